"""Records -> Hugging Face `datasets.Dataset` (datasets is imported on call, not at import)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from crossling.errors import DataFormatError

if TYPE_CHECKING:  # pragma: no cover
    import datasets

_RECORDS = "<records>"  # DataFormatError "path" for in-memory records; the "line" is the record number


def _to_ids(value: Any, index: dict[str, int], n: int, where: int) -> Any:
    if isinstance(value, list):
        return [_to_ids(v, index, n, where) for v in value]
    if isinstance(value, str):
        if value not in index:
            raise DataFormatError(_RECORDS, where, f"label {value!r} is not one of {list(index)}")
        return index[value]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < n:
        return value
    raise DataFormatError(_RECORDS, where, f"label {value!r} is neither a label name nor an id in [0, {n})")


def to_dataset(
    records: Iterable[Mapping[str, Any]],
    *,
    label_names: Sequence[str] | None = None,
    label_column: str | None = None,
) -> datasets.Dataset:
    """Collect `records` (all with the same keys) into a `datasets.Dataset`.

    List values (tokens, tags) become sequence columns. With `label_names`, the label column
    (default: "label" if the records have one, else "tags") becomes a ClassLabel (or a sequence
    of ClassLabel for tags); label strings or ids outside `label_names` raise DataFormatError
    naming the 1-based record number. The records are held in memory.
    """
    import datasets

    columns: dict[str, list[Any]] = {}
    keys: list[str] | None = None
    for number, record in enumerate(records, 1):
        if keys is None:
            keys = list(record)
            columns = {k: [] for k in keys}
        elif set(record) != set(keys):
            raise DataFormatError(
                _RECORDS, number, f"record keys {sorted(record)} differ from the first {keys}"
            )
        for k in keys:
            columns[k].append(record[k])
    if label_names is None or keys is None:
        return datasets.Dataset.from_dict(columns)

    if label_column is None:
        label_column = next((c for c in ("label", "tags") if c in columns), None)
        if label_column is None:
            raise ValueError(
                f"to_dataset: no 'label' or 'tags' column in {list(columns)}; pass label_column="
            )
    if label_column not in columns:
        raise ValueError(f"to_dataset: label_column {label_column!r} is not one of {list(columns)}")
    names = list(label_names)
    index = {name: i for i, name in enumerate(names)}
    values = columns[label_column]
    columns[label_column] = [_to_ids(v, index, len(names), i) for i, v in enumerate(values, 1)]

    inferred = datasets.Dataset.from_dict({k: v for k, v in columns.items() if k != label_column}).features
    class_label = datasets.ClassLabel(names=names)
    is_sequence = bool(values) and isinstance(values[0], list)
    features = datasets.Features(
        {
            **{k: inferred[k] for k in columns if k != label_column},
            label_column: datasets.Sequence(class_label) if is_sequence else class_label,
        }
    )
    # Keep the records' column order.
    features = datasets.Features({k: features[k] for k in columns})
    return datasets.Dataset.from_dict(columns, features=features)
