"""Sentence-pair classification files: XNLI, PAWS-X, AmericasNLI and its XNLI alignment table.

Labels stay strings as written in the file ("entailment", "0"); `to_dataset(..., label_names=...)`
maps them to class ids.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

from crossling.data._io import PathLike, require_records
from crossling.data.tsv import iter_tsv_rows
from crossling.errors import DataFormatError

NLI_LABELS = ("entailment", "neutral", "contradiction")
PAWSX_LABELS = ("0", "1")

# AmericasNLI dev ids continue XNLI's numbering: id - 12450 is the 1-based row of each XNLI dev file.
ANLI_XNLI_ID_OFFSET = 12450


def _check_label(path: PathLike, lineno: int, label: str, labels: Collection[str] | None) -> None:
    if labels is not None and label not in labels:
        raise DataFormatError(path, lineno, f"label {label!r} is not one of {list(labels)}")


def _pairs(
    path: PathLike,
    keys: tuple[str, str, str],
    *,
    header: bool,
    labels: Collection[str] | None,
    quoting: str,
    encoding: str,
    allow_empty: bool,
    keep: tuple[str, ...] = (),
) -> Iterator[dict[str, str]]:
    """Rows -> records with `keys` (text, text, label) plus the `keep` columns the file has."""

    def records() -> Iterator[dict[str, str]]:
        for lineno, row in iter_tsv_rows(
            path, fieldnames=None if header else keys, required=keys, quoting=quoting, encoding=encoding
        ):
            _check_label(path, lineno, row[keys[2]], labels)
            record = {k: row[k] for k in keys}
            record.update({k: row[k] for k in keep if k in row})
            yield record

    return records() if allow_empty else require_records(records(), path, "pairs")


def read_xnli(
    path: PathLike,
    *,
    labels: Collection[str] | None = NLI_LABELS,
    quoting: str = "none",
    encoding: str = "utf-8",
    allow_empty: bool = False,
) -> Iterator[dict[str, str]]:
    """XTREME XNLI ``premise<TAB>hypothesis<TAB>label`` (no header) -> ``{"premise", "hypothesis", "label"}``.

    labels: allowed labels (None: accept any). quoting="none" because XNLI text has bare quotes.
    """
    keys = ("premise", "hypothesis", "label")
    return _pairs(
        path, keys, header=False, labels=labels, quoting=quoting, encoding=encoding, allow_empty=allow_empty
    )


def read_pawsx(
    path: PathLike,
    *,
    labels: Collection[str] | None = PAWSX_LABELS,
    quoting: str = "csv",
    encoding: str = "utf-8",
    allow_empty: bool = False,
) -> Iterator[dict[str, str]]:
    """XTREME PAWS-X ``s1<TAB>s2<TAB>label`` -> ``{"sentence1", "sentence2", "label"}`` (label "0"/"1").

    quoting="csv": in these files a sentence containing quotes is CSV-quoted
    (``"... ""First Night"" ..."``); the reader returns the text with plain quotes.
    """
    keys = ("sentence1", "sentence2", "label")
    return _pairs(
        path, keys, header=False, labels=labels, quoting=quoting, encoding=encoding, allow_empty=allow_empty
    )


def read_americasnli(
    path: PathLike,
    *,
    labels: Collection[str] | None = NLI_LABELS,
    encoding: str = "utf-8",
    allow_empty: bool = False,
) -> Iterator[dict[str, str]]:
    """AmericasNLI TSV with header (``id language premise hypothesis label``).

    -> ``{"premise", "hypothesis", "label"}`` plus ``"language"`` and ``"id"`` when the header has them.
    """
    return _pairs(
        path,
        ("premise", "hypothesis", "label"),
        header=True,
        labels=labels,
        quoting="none",
        encoding=encoding,
        allow_empty=allow_empty,
        keep=("language", "id"),
    )


def read_americasnli_alignment(
    path: PathLike, *, check: bool = True, encoding: str = "utf-8", allow_empty: bool = False
) -> Iterator[dict[str, str]]:
    """``dev_aligned_with_xnli_dev.tsv`` -> one dict per row with all its columns (strings).

    Columns: id, language, xnli_dev_row, label, premise, hypothesis, then premise_XX/hypothesis_XX
    for en es ar ru zh. check: verify the label and that ``int(id) - 12450 == int(xnli_dev_row)``.
    """
    required = ("id", "language", "xnli_dev_row", "label", "premise", "hypothesis")

    def records() -> Iterator[dict[str, str]]:
        for lineno, row in iter_tsv_rows(path, required=required, encoding=encoding):
            if check:
                _check_label(path, lineno, row["label"], NLI_LABELS)
                try:
                    ok = int(row["id"]) - ANLI_XNLI_ID_OFFSET == int(row["xnli_dev_row"])
                except ValueError:
                    ok = False
                if not ok:
                    raise DataFormatError(
                        path,
                        lineno,
                        f"id {row['id']!r} and xnli_dev_row {row['xnli_dev_row']!r} disagree "
                        f"(expected id - {ANLI_XNLI_ID_OFFSET} == xnli_dev_row)",
                    )
            yield row

    return records() if allow_empty else require_records(records(), path, "rows")
