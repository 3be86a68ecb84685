"""Generic tab-separated files with named columns (header row or given names) -> one dict per row."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence

from crossling.data._io import PathLike, iter_tsv, require_records
from crossling.errors import DataFormatError


def iter_tsv_rows(
    path: PathLike,
    *,
    fieldnames: Sequence[str] | None = None,
    required: Collection[str] = (),
    quoting: str = "none",
    encoding: str = "utf-8",
) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, ``{column: value}``) per row; names from `fieldnames`, else from the header row."""
    names = list(fieldnames) if fieldnames is not None else None
    for lineno, row in iter_tsv(path, quoting=quoting, encoding=encoding):
        if names is None:
            if len(set(row)) != len(row):
                raise DataFormatError(path, lineno, f"duplicate column names in header {row}")
            missing = [name for name in required if name not in row]
            if missing:
                raise DataFormatError(
                    path, lineno, f"header lacks column(s) {missing}; found {row} (is the header missing?)"
                )
            names = row
            continue
        if len(row) != len(names):
            raise DataFormatError(
                path,
                lineno,
                f"expected {len(names)} tab-separated columns ({', '.join(names)}), found {len(row)}",
            )
        yield lineno, dict(zip(names, row, strict=True))


def read_tsv(
    path: PathLike,
    *,
    fieldnames: Sequence[str] | None = None,
    header: bool = False,
    required: Collection[str] = (),
    quoting: str = "none",
    encoding: str = "utf-8",
    allow_empty: bool = False,
) -> Iterator[dict[str, str]]:
    """Rows of a TSV file as ``{column: value}`` dicts (values are strings).

    Column names come from the first row (header=True) or from `fieldnames`; every row must have
    exactly that many columns. required: names the header must contain. quoting: "none" keeps
    quote characters literally (NLI text contains bare quotes), "csv" undoes CSV quoting.
    Blank lines are skipped.
    """
    if header == (fieldnames is not None):
        raise ValueError("read_tsv: give exactly one of header=True or fieldnames=[...]")
    rows = (
        row
        for _, row in iter_tsv_rows(
            path, fieldnames=fieldnames, required=required, quoting=quoting, encoding=encoding
        )
    )
    return rows if allow_empty else require_records(rows, path, "rows")
