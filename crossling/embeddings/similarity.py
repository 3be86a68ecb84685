"""Memory-bounded similarity search: sparsemax, orthogonal Procrustes, mutual nearest neighbours.

Nothing here materialises a |queries| x |keys| matrix. Mutual nearest neighbours walk the similarity
matrix tile by tile (``block`` x ``block``, 64 MiB at the default 4096) keeping only the best value
and index per row and per column; sparsemax mixtures take as many query rows at a time as fit a fixed
element budget. Peak extra memory is therefore a constant plus O((|queries| + |keys|) * dim),
however large the vocabularies are.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

DEFAULT_BLOCK = 4096
# sparsemax sorts and cumsums a block: ~5 float32 copies of (rows x keys); 4M elements keep it ~80 MB
DEFAULT_MIXTURE_ELEMENTS = 4_000_000

Progress = Callable[[int], None]  # called with the number of rows just finished


def normalize_rows(x: torch.Tensor, *, center: bool = False) -> torch.Tensor:
    """Unit-length rows (float32); zero rows stay zero. `center` subtracts the mean row first."""
    out = x.to(torch.float32, copy=True)  # one copy, then in place: these matrices can be 250k x 300
    if center and out.shape[0] > 0:
        out -= out.mean(dim=0, keepdim=True)
    out /= out.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return out


def _sparsemax_threshold(zs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For rows sorted in descending order: (support size, tau) over the given prefix."""
    cumulative = zs.cumsum(dim=-1) - 1.0
    k = torch.arange(1, zs.shape[-1] + 1, dtype=zs.dtype, device=zs.device)
    support = (k * zs) > cumulative  # prefix property: true for the k(z) largest, false after
    k_z = support.sum(dim=-1, keepdim=True)
    tau = cumulative.gather(-1, (k_z - 1).clamp_min(0)) / k_z.clamp_min(1).to(zs.dtype)
    return k_z, tau


def sparsemax(z: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Sparsemax (Martins & Astudillo, 2016): Euclidean projection of `z` onto the probability simplex.

    Like softmax the output is non-negative and sums to 1 along `dim`, but entries below a threshold
    tau are exactly zero, so a mixture built from it involves only the few most similar tokens.

    Exact, but cheaper than the textbook full sort: the support is a prefix of the sorted values, so
    the threshold is found from the top 1024 (then 8192) values of each row whenever the support ends
    inside them, and only rows whose support is longer are sorted in full (topk is ~10x faster than
    sort on the 25k-wide rows of a real vocabulary).
    """
    z = z.transpose(dim, -1)
    n = z.shape[-1]
    tau = torch.empty(z.shape[:-1] + (1,), dtype=z.dtype, device=z.device)
    todo = torch.ones(z.shape[:-1], dtype=torch.bool, device=z.device)
    for k in (1024, 8192, n):
        if k >= n:
            k = n
        rows = z[todo]
        zs = torch.topk(rows, k, dim=-1).values if k < n else torch.sort(rows, dim=-1, descending=True).values
        k_z, t = _sparsemax_threshold(zs)
        done = (k_z < k).squeeze(-1) if k < n else torch.ones_like(k_z.squeeze(-1), dtype=torch.bool)
        idx = torch.nonzero(todo, as_tuple=True)
        tau[tuple(i[done] for i in idx)] = t[done]
        todo[tuple(i[done] for i in idx)] = False
        if k == n or not todo.any():
            break
    out = torch.clamp(z - tau, min=0.0)
    return out.transpose(dim, -1)


def procrustes(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Orthogonal W minimising ``||source @ W - target||_F`` (Schönemann 1966): ``W = U V^T``, ``U S V^T =
    svd(source^T target)``. Rows of `source` and `target` are paired anchor vectors."""
    if source.shape != target.shape:
        raise ValueError(
            f"procrustes: anchor matrices differ in shape {tuple(source.shape)} vs {tuple(target.shape)}"
        )
    m = source.to(torch.float64).T @ target.to(torch.float64)
    u, _, vh = torch.linalg.svd(m)
    return (u @ vh).to(torch.float32)


def nearest_neighbours(
    a: torch.Tensor, b: torch.Tensor, *, block: int = DEFAULT_BLOCK, progress: Progress | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-1 by dot product in both directions, tile by tile.

    Returns ``(a_best, a_score, b_best, b_score)``: for each row of `a` the index of its best row in
    `b` and the score, and the same for each row of `b`. Ties go to the lowest index, exactly as one
    ``argmax`` over the full matrix would (a later tile replaces the best only if strictly better),
    so the result does not depend on `block`. Rows should be unit length for cosine similarity.
    """
    n, m = a.shape[0], b.shape[0]
    a_score = torch.full((n,), float("-inf"))
    a_best = torch.full((n,), -1, dtype=torch.long)
    b_score = torch.full((m,), float("-inf"))
    b_best = torch.full((m,), -1, dtype=torch.long)
    if n == 0 or m == 0:
        return a_best, a_score, b_best, b_score
    a = a.to(torch.float32)
    b = b.to(torch.float32)
    for i in range(0, n, block):
        ai = a[i : i + block]
        for j in range(0, m, block):
            sim = ai @ b[j : j + block].T  # one tile: at most block x block floats
            v, k = sim.max(dim=1)  # first maximal index on ties
            better = v > a_score[i : i + block]
            a_score[i : i + block] = torch.where(better, v, a_score[i : i + block])
            a_best[i : i + block] = torch.where(better, k + j, a_best[i : i + block])
            v, k = sim.max(dim=0)
            better = v > b_score[j : j + block]
            b_score[j : j + block] = torch.where(better, v, b_score[j : j + block])
            b_best[j : j + block] = torch.where(better, k + i, b_best[j : j + block])
            del sim
        if progress is not None:
            progress(ai.shape[0])
    return a_best, a_score, b_best, b_score


def mutual_nearest_neighbours(
    a: torch.Tensor, b: torch.Tensor, *, block: int = DEFAULT_BLOCK, progress: Progress | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs ``(i, j)`` where row j of `b` is row i of `a`'s nearest neighbour and vice versa.

    Returns two index tensors (into `a` and into `b`), ordered by i. Memory: one tile plus O(n + m).
    """
    a_best, _, b_best, _ = nearest_neighbours(a, b, block=block, progress=progress)
    if a_best.numel() == 0 or b_best.numel() == 0:
        empty = torch.empty(0, dtype=torch.long)
        return empty, empty
    i = torch.arange(a.shape[0])
    mutual = b_best[a_best] == i
    return i[mutual], a_best[mutual]


def sparsemax_mixture(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    *,
    max_elements: int = DEFAULT_MIXTURE_ELEMENTS,
    progress: Progress | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``sparsemax(queries @ keys^T) @ values``, a block of query rows at a time.

    With unit-length `queries` and `keys` the scores are cosine similarities, as in FOCUS. Returns
    the mixed rows ``[len(queries), values.shape[1]]`` and, per query, how many keys got a non-zero
    weight (the support size).
    """
    nq, nk = queries.shape[0], keys.shape[0]
    out = torch.empty((nq, values.shape[1]), dtype=torch.float32)
    support = torch.zeros(nq, dtype=torch.long)
    if nq == 0:
        return out, support
    if nk == 0:
        raise ValueError("sparsemax_mixture: no keys to mix from")
    keys = keys.to(torch.float32)
    values = values.to(torch.float32)
    rows = max(1, max_elements // nk)
    for i in range(0, nq, rows):
        weights = sparsemax(queries[i : i + rows].to(torch.float32) @ keys.T, dim=-1)
        out[i : i + rows] = weights @ values
        support[i : i + rows] = (weights > 0).sum(dim=-1)
        del weights
        if progress is not None:
            progress(min(rows, nq - i))
    return out, support
