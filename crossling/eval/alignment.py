"""Cross-lingual alignment of sentence representations (Keung et al. 2019, Table 3).

For line-aligned translations a_i / b_i: the cosine between the mean-pooled final hidden states of
a_i and b_i, summarised by its median over i. Keung et al. report adversarial training raising this
from about 0.73 to above 0.9 for mBERT (English vs translated MLDoc documents).

Beyond the paper, two controls. The same median over pairs that are *not* translations (a_i against
b_{i+1}): mean-pooled states of a fine-tuned encoder can crowd into a narrow cone where any two
sentences have a cosine near 1, and translations are only aligned as far as they stand out from that.
And retrieval accuracy: how often b_i is the nearest of all b to a_i, which no such crowding inflates.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from crossling.errors import CrosslingError, DataFormatError

Encoder = Callable[[list[Any]], torch.Tensor]


def cosine_summary(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """Median (and mean, quartiles, n) of the row-wise cosine between two [n, hidden] matrices;
    `mismatched_median`: the median cosine of row i of `a` against row i+1 of `b` (wrapping round),
    pairs that do not translate each other (None for a single row); `retrieval`: the fraction of rows
    i of `a` whose nearest row of `b` by cosine is row i."""
    if a.shape != b.shape:
        raise CrosslingError(f"representations differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.shape[0] == 0:
        raise CrosslingError("no parallel sentence to compare")
    cos = F.cosine_similarity(a.float(), b.float(), dim=-1)
    q = torch.quantile(cos, torch.tensor([0.25, 0.5, 0.75]))
    mismatched = F.cosine_similarity(a.float(), b.float().roll(-1, dims=0), dim=-1)
    unit_a, unit_b = F.normalize(a.float(), dim=-1), F.normalize(b.float(), dim=-1)
    # in blocks of rows, so that n pairs never need an n x n matrix
    nearest = torch.cat([(block @ unit_b.T).argmax(dim=-1) for block in unit_a.split(1024)])
    return {
        "median": float(q[1]),
        "mean": float(cos.mean()),
        "q25": float(q[0]),
        "q75": float(q[2]),
        "pairs": int(cos.numel()),
        "mismatched_median": float(mismatched.median()) if a.shape[0] > 1 else None,
        "retrieval": float((nearest == torch.arange(a.shape[0])).float().mean()),
    }


def parallel_alignment(
    encode_a: Encoder, sentences_a: Sequence[Any], sentences_b: Sequence[Any], encode_b: Encoder | None = None
) -> dict[str, float]:
    """`cosine_summary` of `encode_a(sentences_a)` against `(encode_b or encode_a)(sentences_b)`."""
    if len(sentences_a) != len(sentences_b):
        raise CrosslingError(f"{len(sentences_a)} vs {len(sentences_b)} sentences: not parallel")
    return cosine_summary(encode_a(list(sentences_a)), (encode_b or encode_a)(list(sentences_b)))


def read_parallel_text(
    path_a: str | os.PathLike[str], path_b: str | os.PathLike[str], *, limit: int | None = None
) -> tuple[list[str], list[str]]:
    """Two line-aligned text files -> (sentences a, sentences b), blank pairs skipped."""
    from crossling.data import read_parallel

    a, b = [], []
    for record in read_parallel(path_a, path_b):
        a.append(record["source"])
        b.append(record["target"])
        if limit is not None and len(a) >= limit:
            break
    return a, b


def read_xnli_parallel(
    path_a: str | os.PathLike[str], path_b: str | os.PathLike[str], *, limit: int | None = None
) -> tuple[list[str], list[str]]:
    """Parallel sentences from two XNLI dev files (row i of one translates row i of the other):
    every premise once (each appears on three consecutive rows) and every hypothesis."""
    from crossling.data import read_xnli

    rows_a, rows_b = list(read_xnli(path_a, labels=None)), list(read_xnli(path_b, labels=None))
    if len(rows_a) != len(rows_b):
        raise DataFormatError(
            path_a, None, f"{len(rows_a)} rows but {path_b} has {len(rows_b)}: not the same XNLI split"
        )
    a: list[str] = []
    b: list[str] = []
    previous = None
    for ra, rb in zip(rows_a, rows_b, strict=True):
        if ra["label"] != rb["label"]:
            raise DataFormatError(
                path_a, None, f"{path_a} and {path_b} disagree on labels: rows are not aligned"
            )
        if ra["premise"] != previous:
            a.append(ra["premise"])
            b.append(rb["premise"])
            previous = ra["premise"]
        a.append(ra["hypothesis"])
        b.append(rb["hypothesis"])
    if limit is not None:
        a, b = a[:limit], b[:limit]
    return a, b


def analyze_alignment(
    sentences_a: Sequence[str],
    sentences_b: Sequence[str],
    *,
    pack: Any | None = None,
    pack_b: Any | None = None,
    base: str | os.PathLike[str] | None = None,
    task_adapters: Sequence[Any] = (),
    batch_size: int = 32,
    max_length: int = 128,
) -> list[dict[str, Any]]:
    """Median parallel cosine for the pack alone and for each task adapter on top of it.

    Side a runs through `pack` (or the bare `base`), side b through `pack_b` when given (UniBridge:
    each language through its own pack), else through the same model. One row per model.
    """
    from crossling.tasks.model import build_pack_model, encode_pooled, load_task_model

    def pack_encoder(packed: Any) -> Encoder:
        def encode(sentences: list[Any]) -> torch.Tensor:
            packed.model.set_active_adapters(packed.language)
            return encode_pooled(
                packed.model, packed.tokenizer, sentences, batch_size=batch_size, max_length=max_length
            )

        return encode

    packed_a = build_pack_model(pack, base)
    packed_b = build_pack_model(pack_b, base) if pack_b is not None else packed_a
    what = "language adapter" if packed_a.language else "base model"
    rows = [
        {
            "model": f"{what} only",
            "task_adapter": None,
            "adversarial": None,
            **parallel_alignment(pack_encoder(packed_a), sentences_a, sentences_b, pack_encoder(packed_b)),
        }
    ]
    del packed_a, packed_b
    for task_adapter in task_adapters:
        model_a = load_task_model(task_adapter, pack, base=base, max_length=max_length)
        model_b = (
            load_task_model(task_adapter, pack_b, base=base, max_length=max_length) if pack_b else model_a
        )
        ta = model_a.task_adapter
        rows.append(
            {
                "model": f"+ {ta.task} {ta.config.get('mode')} ({ta.path.name})",
                "task_adapter": str(ta.path),
                "adversarial": (ta.config.get("task_adapter") or {}).get("adversarial"),
                **parallel_alignment(
                    lambda s, m=model_a: m.encode(s, batch_size=batch_size),
                    sentences_a,
                    sentences_b,
                    lambda s, m=model_b: m.encode(s, batch_size=batch_size),
                ),
            }
        )
    return rows


def alignment_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The rows of `analyze_alignment` as a Markdown table."""
    lines = [
        "| model | adversarial | median cosine | mean | non-translations (median) | retrieval | pairs |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        adversarial = r["adversarial"] or "-"
        control = "-" if r.get("mismatched_median") is None else f"{r['mismatched_median']:.3f}"
        retrieval = f"{r['retrieval']:.1%}" if "retrieval" in r else "-"
        cells = [r["model"], adversarial, f"{r['median']:.3f}", f"{r['mean']:.3f}", control, retrieval]
        cells.append(str(r["pairs"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
