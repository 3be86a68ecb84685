"""Line-level file access shared by every reader: exact 1-based line numbers and clear errors."""

from __future__ import annotations

import codecs
import csv
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from crossling.errors import DataFormatError

PathLike = str | os.PathLike[str]
T = TypeVar("T")

# What encoding="auto" uses for a file that is not valid UTF-8: Latin-1 decodes every byte
# (the original CoNLL-2002 and NLTK udhr "*-Latin1" files are Latin-1).
AUTO_FALLBACK = "latin-1"


def check_file(path: PathLike) -> Path:
    """`path` as a Path if it exists and is not a directory, else DataFormatError(path, None, ...)."""
    p = Path(path)
    if not p.exists():
        raise DataFormatError(p, None, "no such file")
    if p.is_dir():
        raise DataFormatError(p, None, "is a directory, expected a file")
    return p


def detect_encoding(path: PathLike, chunk_size: int = 1 << 20) -> str:
    """'utf-8' if the whole file decodes as UTF-8, else 'latin-1' (which decodes any byte).

    Streams the file in chunks so it works on corpora larger than memory.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(check_file(path), "rb") as f:
        _refuse_utf16(path, f.read(2))
        f.seek(0)
        try:
            while chunk := f.read(chunk_size):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return AUTO_FALLBACK
    return "utf-8"


def resolve_encoding(path: PathLike, encoding: str) -> str:
    """Canonical codec name for `encoding`; "auto" sniffs the file (UTF-8, else Latin-1)."""
    if encoding == "auto":
        return detect_encoding(path)
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise DataFormatError(path, None, f"unknown encoding {encoding!r}") from None


def iter_lines(path: PathLike, encoding: str = "utf-8", errors: str = "strict") -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, line without its end-of-line) for each line of `path`.

    Lines are split on b"\\n" only and decoded one by one, so a bad byte is reported at its exact
    line and a stray U+2028 or \\x0c inside a sentence does not shift the line numbers of
    line-aligned files. A UTF-8 byte-order mark at the start of the file is dropped (several real
    corpora have one), as is a \\r before the \\n (XNLI and PAWS-X use CRLF).
    """
    p = check_file(path)
    codec = resolve_encoding(p, encoding)
    strip_bom = codec in ("utf-8", "utf-8-sig")
    if codec == "utf-8-sig":
        codec = "utf-8"  # the BOM is handled here, per file rather than per line
    with open(p, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if lineno == 1:
                _refuse_utf16(p, raw)
            if lineno == 1 and strip_bom and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            if raw.endswith(b"\n"):
                raw = raw[:-1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            try:
                text = raw.decode(codec, errors)
            except UnicodeDecodeError as exc:
                raise DataFormatError(p, lineno, _decode_message(raw, exc, codec)) from None
            yield lineno, text


def _refuse_utf16(path: PathLike, start: bytes) -> None:
    """A UTF-16 file (Excel's "Unicode text", Notepad's "Unicode") cannot be read line by line on
    b"\n", and as Latin-1 it would pass as garbage: say what it is."""
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataFormatError(
            path,
            None,
            "a UTF-16 file (it starts with a UTF-16 byte-order mark); convert it to UTF-8, "
            "e.g. `iconv -f utf-16 -t utf-8 FILE > FILE.utf8`",
        )


def _decode_message(raw: bytes, exc: UnicodeDecodeError, codec: str) -> str:
    message = f"cannot decode byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line as {codec}"
    if codec != "utf-8":
        return message
    latin1 = (
        "a Latin-1 file? read it with --encoding latin-1 (or auto; in Python encoding='latin-1'), or "
        "convert it to UTF-8 with `iconv -f latin1 -t utf-8`"
    )
    if exc.reason == "unexpected end of data":
        # A lead byte at the end of the line. If valid UTF-8 multi-byte characters came before it,
        # the text is UTF-8 with a character cut off (udhr1 Tamil-UTF8); otherwise it may be Latin-1.
        truncated = "a truncated character; errors='replace' substitutes U+FFFD"
        if not raw[: exc.start].isascii():
            return f"{message} ({truncated})"
        return f"{message} ({truncated}; or {latin1})"
    return f"{message} ({latin1})"


def count_lines(path: PathLike, chunk_size: int = 1 << 20) -> int:
    """Number of lines as `iter_lines` sees them (a last line without b"\\n" counts)."""
    n = 0
    last = b"\n"
    with open(check_file(path), "rb") as f:
        while chunk := f.read(chunk_size):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


def iter_tsv(
    path: PathLike,
    *,
    quoting: str = "none",
    encoding: str = "utf-8",
    errors: str = "strict",
) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, fields) for each non-blank line of a tab-separated file.

    quoting="none" keeps quote characters as text (XNLI and AmericasNLI sentences contain bare
    quotes); quoting="csv" undoes CSV quoting ("a ""b"" c" -> a "b" c), as in the PAWS-X files.
    A quoted field may not span lines: that is almost always an unbalanced quote, and following
    it would silently merge sentences.
    """
    if quoting not in ("none", "csv"):
        raise ValueError(f"quoting must be 'none' or 'csv', not {quoting!r}")
    span = [0, 0]  # first and last line number the csv reader pulled for the current row

    def lines() -> Iterator[str]:
        for lineno, line in iter_lines(path, encoding, errors):
            if line.strip():
                if span[0] == 0:
                    span[0] = lineno
                span[1] = lineno
                yield line

    reader = csv.reader(
        lines(),
        delimiter="\t",
        quoting=csv.QUOTE_NONE if quoting == "none" else csv.QUOTE_MINIMAL,
        strict=True,
    )
    while True:
        span[0] = 0
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataFormatError(
                path, span[0] or span[1], f"bad CSV quoting ({exc}): unbalanced quote? try quoting='none'"
            ) from None
        if span[0] != span[1]:
            raise DataFormatError(
                path,
                span[0],
                "a quoted field runs over several lines (unbalanced quote?); try quoting='none'",
            )
        yield span[0], row


def require_records(records: Iterable[T], path: PathLike, what: str = "records") -> Iterator[T]:
    """Pass `records` through; raise DataFormatError if there were none."""
    empty = True
    for record in records:
        empty = False
        yield record
    if empty:
        raise DataFormatError(path, None, f"no {what} found (empty file?)")
