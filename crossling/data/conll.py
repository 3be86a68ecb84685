"""Token-level tagged files: CoNLL-U, XTREME ``token<TAB>tag`` and space-separated IOB (CoNLL, MasakhaNER).

Every reader yields one record per sentence: ``{"tokens": [...], "tags": [...]}``; CoNLL-U adds
``"id"`` (the ``# sent_id``, or None).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Iterator, Sequence
from typing import Any

from crossling.data._io import PathLike, iter_lines, require_records
from crossling.errors import DataFormatError

log = logging.getLogger(__name__)

UPOS_TAGS = frozenset(
    "ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB X".split()
)
NER_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
"""The PAN-X / CoNLL-2003 (MasakhaNE-copy) tag set; MasakhaNER adds B-/I-DATE, CoNLL-2002 B-/I-MISC."""

_IOB_TAG = re.compile(r"O|[BIES]-\S+")
_INT = re.compile(r"[0-9]+")
_MULTIWORD_OR_EMPTY = re.compile(r"[0-9]+-[0-9]+|[0-9]+\.[0-9]+")
_SENT_ID = re.compile(r"#\s*sent_id\s*=\s*(.*)")
_LANG_PREFIX = re.compile(r"([a-z]{2,3}):.")
# Columns of a space-separated IOB line: spaces or tabs only, because str.split() would also cut
# at U+00A0 and other Unicode spaces that can be part of a token.
_IOB_SPLIT = re.compile(r"[ \t]+")


def iob1_to_iob2(tags: Sequence[str]) -> list[str]:
    """Convert IOB1 tags to IOB2: an ``I-X`` that starts an entity becomes ``B-X``.

    On tags that are already IOB2 this is the identity, except that it repairs stray ``I-X``
    after ``O`` (two such tags exist in the staged CoNLL-2002 Spanish and MasakhaNER Hausa train files).
    """
    out: list[str] = []
    prev = "O"
    for tag in tags:
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
        prev = tag
    return out


def _check_tag(path: PathLike, lineno: int, tag: str, tags: Collection[str] | None, check_iob: bool) -> None:
    if tags is not None and tag not in tags:
        raise DataFormatError(path, lineno, f"tag {tag!r} is not one of the allowed tags {sorted(tags)}")
    if check_iob and not _IOB_TAG.fullmatch(tag):
        raise DataFormatError(path, lineno, f"tag {tag!r} is not an IOB tag (O, B-X, I-X)")


def read_conllu(
    path: PathLike,
    *,
    tag_column: str = "upos",
    tags: Collection[str] | None = None,
    encoding: str = "utf-8",
    errors: str = "strict",
    allow_empty: bool = False,
) -> Iterator[dict[str, Any]]:
    """CoNLL-U -> ``{"tokens", "tags", "id"}`` per sentence.

    Tags come from column 4 (UPOS) or, with tag_column="xpos", column 5. Comment lines,
    multiword-token ranges (``1-2``) and empty nodes (``1.1``) are skipped, so tokens are the
    syntactic words. ``id`` is the ``# sent_id`` value or None. tags: allowed tag set, if given.
    """
    if tag_column not in ("upos", "xpos"):
        raise ValueError(f"tag_column must be 'upos' or 'xpos', not {tag_column!r}")
    col = 3 if tag_column == "upos" else 4

    def records() -> Iterator[dict[str, Any]]:
        tokens: list[str] = []
        labels: list[str] = []
        sent_id: str | None = None
        for lineno, line in iter_lines(path, encoding, errors):
            if not line.strip():
                if tokens:
                    yield {"tokens": tokens, "tags": labels, "id": sent_id}
                tokens, labels, sent_id = [], [], None
                continue
            if line.startswith("#"):
                match = _SENT_ID.match(line)
                if match and not tokens:
                    sent_id = match.group(1).strip()
                continue
            cols = line.split("\t")
            if len(cols) != 10:
                raise DataFormatError(
                    path, lineno, f"expected 10 tab-separated CoNLL-U columns, found {len(cols)}"
                )
            word_id = cols[0]
            if _MULTIWORD_OR_EMPTY.fullmatch(word_id):
                continue
            if not _INT.fullmatch(word_id):
                raise DataFormatError(
                    path, lineno, f"bad word ID {word_id!r} (expected 1, 2, ... or 1-2 or 1.1)"
                )
            if int(word_id) != len(tokens) + 1:
                raise DataFormatError(
                    path,
                    lineno,
                    f"word ID {word_id} out of sequence (expected {len(tokens) + 1}); missing blank line?",
                )
            _check_tag(path, lineno, cols[col], tags, False)
            tokens.append(cols[1])
            labels.append(cols[col])
        if tokens:
            yield {"tokens": tokens, "tags": labels, "id": sent_id}

    return records() if allow_empty else require_records(records(), path, "sentences")


def _read_columns(
    path: PathLike,
    *,
    split: re.Pattern[str] | str,
    columns: int | None,
    encoding: str,
    errors: str,
    skip_docstart: bool,
    drop_empty_tokens: bool,
) -> Iterator[tuple[list[int], list[str], list[str]]]:
    """Blank-line-separated sentences of ``token ... tag`` lines -> (line numbers, tokens, tags).

    The tag is the last column. Every token line must have the same number of columns: `columns`
    if given, else the count on the first token line.
    """
    lines: list[int] = []
    tokens: list[str] = []
    labels: list[str] = []
    expected, expected_line = columns, 0
    dropped, first_dropped = 0, 0
    for lineno, line in iter_lines(path, encoding, errors):
        line = line.rstrip(" \t")
        if not line:
            if tokens:
                yield lines, tokens, labels
            lines, tokens, labels = [], [], []
            continue
        fields = split.split(line) if isinstance(split, re.Pattern) else line.split(split)
        if skip_docstart and fields[0] == "-DOCSTART-":
            # A document boundary is also a sentence boundary (ned.* has no blank line after it).
            if tokens:
                yield lines, tokens, labels
            lines, tokens, labels = [], [], []
            continue
        if len(fields) == 1:
            raise DataFormatError(path, lineno, f"token {fields[0]!r} has no tag (expected 'token<sep>tag')")
        if expected is None:
            expected, expected_line = len(fields), lineno
        if len(fields) != expected:
            where = f" (as on line {expected_line})" if expected_line else ""
            raise DataFormatError(path, lineno, f"expected {expected} columns{where}, found {len(fields)}")
        if not fields[0]:
            if not drop_empty_tokens:
                raise DataFormatError(path, lineno, "empty token (line starts with the separator)")
            dropped += 1
            first_dropped = first_dropped or lineno
            continue
        lines.append(lineno)
        tokens.append(fields[0])
        labels.append(fields[-1])
    if tokens:
        yield lines, tokens, labels
    if dropped:
        # Real data has these: MasakhaNER 2.0 xho/train.txt has two " O" lines.
        log.warning("%s: dropped %d empty token(s), first on line %d", path, dropped, first_dropped)


def read_xtreme(
    path: PathLike,
    *,
    lang_prefix: str | None = "auto",
    tags: Collection[str] | None = None,
    to_iob2: bool = False,
    encoding: str = "utf-8",
    errors: str = "strict",
    drop_empty_tokens: bool = True,
    allow_empty: bool = False,
) -> Iterator[dict[str, list[str]]]:
    """XTREME ``token<TAB>tag`` files (UD-POS, PAN-X), blank line between sentences -> ``{"tokens", "tags"}``.

    lang_prefix: XTREME's own preprocessing writes PAN-X tokens as ``en:Paris``. "auto" strips
    such a prefix when every token of the first sentence carries the same one (the staged
    files have none); a code such as "en" strips exactly ``en:``; None keeps tokens as they are.
    Once stripping, a token without the prefix is an error.
    tags: allowed tag set (e.g. UPOS_TAGS). to_iob2: apply iob1_to_iob2 (NER files only).
    """
    if lang_prefix is not None and lang_prefix != "auto" and not lang_prefix:
        raise ValueError("lang_prefix must be 'auto', a language code or None")

    def records() -> Iterator[dict[str, list[str]]]:
        prefix: str | None = None if lang_prefix == "auto" else lang_prefix
        first = True
        for lines, tokens, labels in _read_columns(
            path,
            split="\t",
            columns=2,
            encoding=encoding,
            errors=errors,
            skip_docstart=False,
            drop_empty_tokens=drop_empty_tokens,
        ):
            if first and lang_prefix == "auto":
                found = {m.group(1) if (m := _LANG_PREFIX.match(t)) else None for t in tokens}
                prefix = found.pop() if len(found) == 1 else None
            first = False
            if prefix is not None:
                marker = prefix + ":"
                for lineno, token in zip(lines, tokens, strict=True):
                    if not token.startswith(marker):
                        raise DataFormatError(
                            path,
                            lineno,
                            f"token {token!r} lacks the language prefix {marker!r} "
                            "(pass lang_prefix=None to keep tokens unchanged)",
                        )
                tokens = [t[len(marker) :] for t in tokens]
            for lineno, tag in zip(lines, labels, strict=True):
                _check_tag(path, lineno, tag, tags, False)
            yield {"tokens": tokens, "tags": iob1_to_iob2(labels) if to_iob2 else labels}

    return records() if allow_empty else require_records(records(), path, "sentences")


def read_iob(
    path: PathLike,
    *,
    columns: int | None = None,
    tags: Collection[str] | None = None,
    check_iob: bool = True,
    to_iob2: bool = False,
    encoding: str = "utf-8",
    errors: str = "strict",
    skip_docstart: bool = True,
    drop_empty_tokens: bool = True,
    allow_empty: bool = False,
) -> Iterator[dict[str, list[str]]]:
    """Space-separated IOB NER files -> ``{"tokens", "tags"}`` per sentence.

    Covers MasakhaNER (``token TAG``), CoNLL-2003 (``token POS CHUNK NER``) and CoNLL-2002
    (``token POS NER``): the tag is the last column, ``-DOCSTART-`` lines are skipped.
    columns: exact column count (default: whatever the first token line has, then constant).
    tags: allowed tag set. check_iob: every tag must look like O / B-X / I-X.
    to_iob2: convert IOB1 to IOB2. encoding: "utf-8", "latin-1" (original CoNLL-2002 release)
    or "auto". drop_empty_tokens: drop lines whose token is empty (``" O"``) instead of failing.
    """

    def records() -> Iterator[dict[str, list[str]]]:
        for lines, tokens, labels in _read_columns(
            path,
            split=_IOB_SPLIT,
            columns=columns,
            encoding=encoding,
            errors=errors,
            skip_docstart=skip_docstart,
            drop_empty_tokens=drop_empty_tokens,
        ):
            for lineno, tag in zip(lines, labels, strict=True):
                _check_tag(path, lineno, tag, tags, check_iob)
            yield {"tokens": tokens, "tags": iob1_to_iob2(labels) if to_iob2 else labels}

    return records() if allow_empty else require_records(records(), path, "sentences")
