"""Monolingual corpora: plain text, JSON lines, Bible verse TSV and UDHR text.

Every reader yields ``{"text": str}`` records (the Bible reader adds ``"id"``) lazily, so a
corpus of any size streams through.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from crossling.data._io import PathLike, iter_lines, iter_tsv, require_records
from crossling.errors import DataFormatError


def read_text(
    path: PathLike,
    *,
    encoding: str = "utf-8",
    errors: str = "strict",
    strip: bool = True,
    skip_empty: bool = True,
    allow_empty: bool = False,
) -> Iterator[dict[str, str]]:
    """One sentence per line -> ``{"text"}`` per line.

    strip: remove surrounding whitespace. skip_empty: drop blank lines.
    allow_empty: accept a file with no records (otherwise DataFormatError).
    """

    def records() -> Iterator[dict[str, str]]:
        for _, line in iter_lines(path, encoding, errors):
            text = line.strip() if strip else line
            if skip_empty and not text.strip():
                continue
            yield {"text": text}

    return records() if allow_empty else require_records(records(), path, "lines")


def read_jsonl(
    path: PathLike,
    *,
    field: str = "text",
    encoding: str = "utf-8",
    skip_empty: bool = True,
    allow_empty: bool = False,
) -> Iterator[dict[str, str]]:
    """JSON lines, one object per line -> ``{"text": obj[field]}``.

    Blank lines are ignored; a line that is not a JSON object with a string `field` is an error.
    """

    def records() -> Iterator[dict[str, str]]:
        for lineno, line in iter_lines(path, encoding):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(
                    path, lineno, f"invalid JSON: {exc.msg} at column {exc.colno}"
                ) from None
            if not isinstance(obj, dict):
                raise DataFormatError(path, lineno, f"expected a JSON object, got {type(obj).__name__}")
            if field not in obj:
                raise DataFormatError(path, lineno, f"no field {field!r} (fields: {', '.join(sorted(obj))})")
            text = obj[field]
            if not isinstance(text, str):
                raise DataFormatError(path, lineno, f"field {field!r} is {type(text).__name__}, not a string")
            if skip_empty and not text.strip():
                continue
            yield {"text": text}

    return records() if allow_empty else require_records(records(), path, "lines")


def read_bible(
    path: PathLike, *, encoding: str = "utf-8", allow_empty: bool = False
) -> Iterator[dict[str, str]]:
    """Bible verse TSV (``verse_id<TAB>text``, e.g. ``b.MAT.1.1``) -> ``{"id", "text"}``."""

    def records() -> Iterator[dict[str, str]]:
        for lineno, row in iter_tsv(path, encoding=encoding):
            if len(row) != 2:
                raise DataFormatError(
                    path, lineno, f"expected 2 tab-separated columns (id, text), found {len(row)}"
                )
            yield {"id": row[0], "text": row[1]}

    return records() if allow_empty else require_records(records(), path, "verses")


# NLTK's udhr (v1) files carry their encoding in the file name: "Spanish-Latin1", "Tamil-UTF8".
_UDHR_NAME_ENCODINGS = {"latin1": "latin-1", "latin2": "iso8859-2", "utf8": "utf-8"}
_UDHR_SUFFIX = re.compile(r"-([A-Za-z0-9]+)$")


def udhr_encoding(path: PathLike) -> str:
    """Encoding implied by an NLTK udhr file name (``*-Latin1`` -> latin-1); UTF-8 otherwise."""
    match = _UDHR_SUFFIX.search(Path(path).name)
    if match:
        return _UDHR_NAME_ENCODINGS.get(match.group(1).lower(), "utf-8")
    return "utf-8"


def read_udhr(
    path: PathLike,
    *,
    encoding: str | None = None,
    errors: str = "strict",
    paragraphs: bool = False,
    allow_empty: bool = False,
) -> Iterator[dict[str, str]]:
    """UDHR plain text -> ``{"text"}`` per non-blank line (stripped).

    encoding=None takes it from the file name (udhr1 ``*-Latin1`` / ``*-UTF8``), else UTF-8.
    paragraphs=True joins runs of non-blank lines separated by blank lines into one record,
    for the hard-wrapped files (e.g. udhr2 ``krl.txt``).
    """
    enc = encoding or udhr_encoding(path)

    def records() -> Iterator[dict[str, str]]:
        block: list[str] = []
        for _, line in iter_lines(path, enc, errors):
            text = " ".join(line.split())
            if text and paragraphs:
                block.append(text)
            elif text:
                yield {"text": text}
            elif block:
                yield {"text": " ".join(block)}
                block = []
        if block:
            yield {"text": " ".join(block)}

    return records() if allow_empty else require_records(records(), path, "paragraphs")
