"""`read(path, format="auto")`: one entry point for every single-file format, with format guessing.

Parallel text needs two files and has its own reader, `read_parallel`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from crossling.data._io import PathLike, check_file, iter_lines
from crossling.data.conll import read_conllu, read_iob, read_xtreme
from crossling.data.corpus import read_bible, read_jsonl, read_text, read_udhr
from crossling.data.pairs import (
    NLI_LABELS,
    PAWSX_LABELS,
    read_americasnli,
    read_americasnli_alignment,
    read_pawsx,
    read_xnli,
)
from crossling.data.tsv import read_tsv
from crossling.errors import ConfigError, DataFormatError


def _read_tsv_with_header(path: PathLike, **options: Any) -> Iterator[dict[str, str]]:
    return read_tsv(path, header=True, **options)


# name -> (reader, what it yields); the CLI's --format choices come from here.
FORMATS: dict[str, tuple[Callable[..., Iterator[dict[str, Any]]], str]] = {
    "text": (read_text, "one sentence per line -> {text}"),
    "jsonl": (read_jsonl, "JSON lines -> {text} (field= sets the key)"),
    "conllu": (read_conllu, "CoNLL-U -> {tokens, tags (UPOS), id}"),
    "xtreme": (read_xtreme, "XTREME token<TAB>tag (UD-POS, PAN-X) -> {tokens, tags}"),
    "iob": (read_iob, "space-separated IOB NER (MasakhaNER, CoNLL-2002/2003) -> {tokens, tags}"),
    "nli": (read_xnli, "XNLI premise<TAB>hypothesis<TAB>label -> {premise, hypothesis, label}"),
    "pawsx": (read_pawsx, "PAWS-X s1<TAB>s2<TAB>label -> {sentence1, sentence2, label}"),
    "americasnli": (read_americasnli, "AmericasNLI TSV with header -> NLI keys + language, id"),
    "anli-alignment": (read_americasnli_alignment, "AmericasNLI-XNLI alignment TSV -> its columns"),
    "bible": (read_bible, "Bible verse TSV -> {id, text}"),
    "udhr": (read_udhr, "UDHR plain text -> {text} per paragraph line"),
    "tsv": (_read_tsv_with_header, "any TSV with a header row -> its columns"),
}

_SNIFF_LINES = 20
_UDHR_NAME = re.compile(r"-(?:Latin[12]|UTF8)$")
_VERSE_ID = re.compile(r"b\.[A-Z0-9]+\.[0-9]+\.[0-9]+")
_CONLLU_ID = re.compile(r"[0-9]+(?:[-.][0-9]+)?")
_IOB_TAG = re.compile(r"O|[BIES]-\S+")
_TAG_LIKE = re.compile(r"[A-Z]+|[BIES]-\S+")  # UPOS or IOB


def _looks_conllu(lines: list[str]) -> bool:
    tokens = [ln.split("\t") for ln in lines if not ln.startswith("#")]
    return bool(tokens) and all(len(c) == 10 and _CONLLU_ID.fullmatch(c[0]) for c in tokens)


def _looks_iob(lines: list[str]) -> bool:
    rows = [ln.split() for ln in lines if not ln.startswith("-DOCSTART-")]
    return bool(rows) and all(2 <= len(r) <= 4 and _IOB_TAG.fullmatch(r[-1]) for r in rows)


def guess_format(path: PathLike) -> str:
    """Name of the format of `path` (a key of FORMATS), from its name and first lines.

    Raises DataFormatError when the file is empty or matches no known layout.
    """
    p = check_file(path)
    name = p.name
    if p.suffix == ".conllu":
        return "conllu"
    if p.suffix == ".jsonl":
        return "jsonl"
    if name.endswith(".verses.tsv"):
        return "bible"
    if _UDHR_NAME.search(name) or p.parent.name.startswith("udhr"):
        return "udhr"

    # Sniff undecodable bytes as U+FFFD: the layout is what matters here, not the text.
    lines = [ln for _, ln in itertools.islice(iter_lines(p, errors="replace"), 200) if ln.strip()]
    lines = lines[:_SNIFF_LINES]
    if not lines:
        raise DataFormatError(p, None, "cannot guess the format of an empty file")
    if _looks_conllu(lines):
        return "conllu"
    if any("\t" in ln for ln in lines):
        header = lines[0].split("\t")
        rows = [ln.split("\t") for ln in lines[1:]] or [header]
        if {"id", "xnli_dev_row", "premise", "hypothesis"} <= set(header):
            return "anli-alignment"
        if {"premise", "hypothesis", "label"} <= set(header):
            return "americasnli"
        all_rows = [header, *rows]
        widths = {len(r) for r in all_rows}
        if widths == {3} and all(r[2] in NLI_LABELS for r in all_rows):
            return "nli"
        if widths == {3} and all(r[2] in PAWSX_LABELS for r in all_rows):
            return "pawsx"
        if widths == {2} and all(_VERSE_ID.fullmatch(r[0]) for r in all_rows):
            return "bible"
        if widths == {2} and all(_TAG_LIKE.fullmatch(r[1]) for r in all_rows):
            return "xtreme"
        if len(widths) == 1 and p.suffix == ".tsv":
            return "tsv"
        raise DataFormatError(p, None, f"cannot guess the format of this tab-separated file; {_choose()}")
    if _looks_iob(lines):
        return "iob"
    return "text"


def _choose() -> str:
    return f"pass format= one of {', '.join(FORMATS)}"


def read(path: PathLike, format: str = "auto", **options: Any) -> Iterator[dict[str, Any]]:
    """Records of `path` in `format` ("auto": guess_format), options passed to that format's reader."""
    fmt = guess_format(path) if format == "auto" else format
    if fmt not in FORMATS:
        raise ConfigError(f"unknown data format {format!r}; choose 'auto' or one of {', '.join(FORMATS)}")
    return FORMATS[fmt][0](Path(path), **options)


# Which fields of a record are running text, by format (tagging formats: the tokens, space-joined).
_SENTENCE_FIELDS: dict[str, tuple[str, ...]] = {
    "text": ("text",),
    "jsonl": ("text",),
    "bible": ("text",),
    "udhr": ("text",),
    "nli": ("premise", "hypothesis"),
    "pawsx": ("sentence1", "sentence2"),
    "americasnli": ("premise", "hypothesis"),
    "anli-alignment": ("premise", "hypothesis"),
    "conllu": ("tokens",),
    "xtreme": ("tokens",),
    "iob": ("tokens",),
}


def read_sentences(path: PathLike, format: str = "auto") -> Iterator[str]:
    """The running text of any corpus or labelled file crossling reads, one sentence per item.

    Plain text and UDHR give their lines, Bible verse TSVs and JSON lines their text field, NLI and
    paraphrase pairs both sentences, CoNLL-U / XTREME / IOB files their tokens joined by spaces (labels
    unused), a TSV with a header its ``text`` or ``sentence`` column. This is what lets a treebank or
    a NER training set serve as unlabelled text for language adaptation. A file whose layout is not
    recognised ("auto") is read as plain lines: a text corpus may well contain a stray tab.
    """
    if format == "auto":
        try:
            format = guess_format(path)
        except DataFormatError:
            format = "text"  # read_text still refuses an empty file, with its name
    fields = _SENTENCE_FIELDS.get(format)
    if format == "tsv":
        header = next(read(path, "tsv"), {})
        fields = tuple(k for k in ("text", "sentence") if k in header)[:1] or None
    if not fields:
        raise ConfigError(
            f"{path}: a {format!r} file has no running text crossling knows (formats with text: "
            f"{', '.join(_SENTENCE_FIELDS)}; a TSV needs a 'text' or 'sentence' column)"
        )
    for record in read(path, format):
        for key in fields:
            value = record[key]
            text = " ".join(value) if isinstance(value, list) else str(value)
            if text.strip():
                yield text.strip()
