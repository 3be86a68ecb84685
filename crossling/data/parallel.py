"""Line-aligned parallel text: line i of the source file translates line i of the target file."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from crossling.data._io import PathLike, count_lines, iter_lines, require_records
from crossling.errors import DataFormatError

log = logging.getLogger(__name__)


def read_parallel(
    source_path: PathLike,
    target_path: PathLike,
    *,
    encoding: str = "utf-8",
    strip: bool = True,
    skip_empty: bool = True,
    allow_empty: bool = False,
) -> Iterator[dict[str, str]]:
    """Two line-aligned files -> ``{"source", "target"}`` per line pair.

    Both files are counted (a cheap byte scan) before anything is yielded, so a length mismatch
    fails up front with both names and counts instead of after a partial read.
    skip_empty: drop pairs where either side is blank (AmericasNLP dev.es files have a few
    blank lines; the pair is kept in the count, so alignment is unaffected).
    """
    n_source, n_target = count_lines(source_path), count_lines(target_path)
    if n_source != n_target:
        raise DataFormatError(
            source_path,
            None,
            f"not line-aligned with {target_path}: {n_source} lines in {source_path}, "
            f"{n_target} lines in {target_path}",
        )

    def records() -> Iterator[dict[str, str]]:
        skipped = 0
        pairs = zip(iter_lines(source_path, encoding), iter_lines(target_path, encoding), strict=True)
        for (_, src), (_, tgt) in pairs:
            if strip:
                src, tgt = src.strip(), tgt.strip()
            if skip_empty and not (src.strip() and tgt.strip()):
                skipped += 1
                continue
            yield {"source": src, "target": tgt}
        if skipped:
            log.info("%s / %s: skipped %d pair(s) with a blank side", source_path, target_path, skipped)

    return records() if allow_empty else require_records(records(), source_path, "line pairs")
