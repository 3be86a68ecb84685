"""Cross-lingual alignment of sentence representations (Keung et al. 2019, Table 3).

For line-aligned translations a_i / b_i: the cosine between the mean-pooled final hidden states of
a_i and b_i, summarised by its median over i. Keung et al. report adversarial training raising this
from about 0.73 to above 0.9 for mBERT (English vs translated MLDoc documents).

Beyond the paper, two controls. The same median over pairs that are *not* translations (each a_i
against the b of a random other pair, a fixed-seed derangement, so that no ordering of the file, such
as XNLI's premise then its hypotheses, pairs related sentences): mean-pooled states of a fine-tuned
encoder can crowd into a narrow cone where a typical unrelated pair has a cosine near 1, and
translations are only aligned as far as they stand out from that. And retrieval accuracy: how often
b_i is the nearest of all b to a_i, which no such crowding inflates.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from crossling.errors import CrosslingError, DataFormatError

Encoder = Callable[[list[Any]], torch.Tensor]


def derangement(n: int, seed: int = 0) -> torch.Tensor:
    """A random permutation of range(n) that moves every index (n >= 2), the same for a given seed."""
    if n < 2:
        raise CrosslingError(f"no derangement of {n} item(s)")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    for i in range(n):
        if perm[i] == i:  # swap with the next place: neither place is then fixed
            j = (i + 1) % n
            perm[i], perm[j] = perm[j], perm[i]
    return torch.tensor(perm)


def cosine_summary(a: torch.Tensor, b: torch.Tensor, *, seed: int = 0) -> dict[str, float]:
    """Median (and mean, quartiles, n) of the row-wise cosine between two [n, hidden] matrices;
    `mismatched_median`: the median cosine of row i of `a` against row `derangement(n, seed)[i]` of
    `b`, pairs that do not translate each other (None for a single row); `retrieval`: the fraction of
    rows i of `a` for which no row of `b` is nearer by cosine than row i (a tie counts as found, so a
    sentence repeated in `b` does not count as missed)."""
    if a.shape != b.shape:
        raise CrosslingError(f"representations differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    n = a.shape[0]
    if n == 0:
        raise CrosslingError("no parallel sentence to compare")
    cos = F.cosine_similarity(a.float(), b.float(), dim=-1)
    q = torch.quantile(cos, torch.tensor([0.25, 0.5, 0.75]))
    mismatched = None
    if n > 1:
        other = F.cosine_similarity(a.float(), b.float()[derangement(n, seed)], dim=-1)
        mismatched = float(torch.quantile(other, 0.5))
    unit_a, unit_b = F.normalize(a.float(), dim=-1), F.normalize(b.float(), dim=-1)
    found = []
    for start in range(0, n, 1024):  # in blocks of rows: n pairs never need an n x n matrix
        sim = unit_a[start : start + 1024] @ unit_b.T
        rows = torch.arange(sim.shape[0])
        found.append(sim[rows, start + rows] >= sim.max(dim=-1).values)
    return {
        "median": float(q[1]),
        "mean": float(cos.mean()),
        "q25": float(q[0]),
        "q75": float(q[2]),
        "pairs": int(n),
        "mismatched_median": mismatched,
        "retrieval": float(torch.cat(found).float().mean()),
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
        cells = [
            r["model"],
            adversarial,
            f"{r['median']:.3f}",
            f"{r['mean']:.3f}",
            control,
            f"{r['retrieval']:.1%}",
            str(r["pairs"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
