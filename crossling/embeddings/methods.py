"""Embedding initialisation methods as pure functions (the FOCUS style).

Each function takes the source embedding matrix, the two vocabularies and, where the method needs
them, fastText token vectors, plus a seed; it returns the new matrix ``[len(target_vocab), hidden]``
(dtype of the source matrix) and a :class:`RowSources` saying where every row came from. Nothing here
loads a model or touches a file: model surgery and I/O live in :mod:`crossling.embeddings.api`.

Row origins, in the order they are assigned:

``special``    base special token with the same role (cls/bos, sep/eos, pad, unk, mask)
``lexical``    the same token in the base vocabulary, after word-boundary-marker normalisation
``semantic``   UniBridge: mutual nearest neighbour of a non-overlapping base token (fastText space)
``sparsemax``  sparsemax-weighted sum of the rows of already-initialised target tokens
``random``     none of the above (e.g. the token never occurs in the corpus)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch

from crossling.embeddings.fasttext_vectors import TokenVectors
from crossling.embeddings.similarity import (
    DEFAULT_BLOCK,
    DEFAULT_MIXTURE_ELEMENTS,
    mutual_nearest_neighbours,
    normalize_rows,
    procrustes,
    sparsemax_mixture,
)
from crossling.embeddings.tokens import Vocab, lexical_overlap, special_token_map

ORIGINS: tuple[str, ...] = ("random", "special", "lexical", "semantic", "sparsemax")
RANDOM, SPECIAL, LEXICAL, SEMANTIC, SPARSEMAX = range(len(ORIGINS))
Alignment = Literal["procrustes", "none"]
# Below this many shared tokens no rotation is fitted at all. A rotation of a d-dimensional space is
# fully determined only by about d anchors: with fewer, the directions outside their span are rotated
# arbitrarily, which is warned about (and recorded as "underdetermined") rather than refused.
MIN_ANCHORS = 10


@dataclasses.dataclass
class RowSources:
    """Where each target row came from: ``origin[i]`` indexes :data:`ORIGINS`; ``source_index[i]`` is
    the base row copied into row i (special, lexical and semantic rows) or -1."""

    origin: torch.Tensor
    source_index: torch.Tensor
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    warnings: list[str] = dataclasses.field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Rows per origin, every origin listed (they sum to the number of target rows)."""
        binc = torch.bincount(self.origin.to(torch.long), minlength=len(ORIGINS)).tolist()
        return {name: int(binc[code]) for code, name in enumerate(ORIGINS)}

    def pairs(self, origin: str) -> list[tuple[int, int]]:
        """``(target id, source id)`` for rows copied with the given origin (special/lexical/semantic)."""
        code = ORIGINS.index(origin)
        rows = torch.nonzero(self.origin == code).flatten()
        return list(zip(rows.tolist(), self.source_index[rows].tolist(), strict=True))


class _Rows:
    """The matrix under construction plus its bookkeeping (float32 until the end)."""

    def __init__(self, num_rows: int, source: torch.Tensor):
        self.source = source.detach().to(torch.float32)
        self.out = torch.zeros((num_rows, self.source.shape[1]), dtype=torch.float32)
        self.origin = torch.full((num_rows,), RANDOM, dtype=torch.int8)
        self.source_index = torch.full((num_rows,), -1, dtype=torch.long)
        self.details: dict[str, Any] = {}
        self.warnings: list[str] = []

    def copy(self, pairs: dict[int, int], origin: int) -> None:
        if not pairs:
            return
        t = torch.tensor(list(pairs.keys()), dtype=torch.long)
        s = torch.tensor(list(pairs.values()), dtype=torch.long)
        self.out[t] = self.source[s]
        self.origin[t] = origin
        self.source_index[t] = s

    def fill_random(self, seed: int) -> None:
        """Rows still unset: N(mean, std) per dimension of the source rows (FOCUS's fallback)."""
        rows = torch.nonzero(self.origin == RANDOM).flatten()
        if rows.numel() == 0:
            return
        mean, std = _source_moments(self.source)
        gen = torch.Generator().manual_seed(seed)
        self.out[rows] = torch.normal(
            mean.expand(rows.numel(), -1), std.expand(rows.numel(), -1), generator=gen
        )

    def finish(self, dtype: torch.dtype) -> tuple[torch.Tensor, RowSources]:
        return self.out.to(dtype), RowSources(self.origin, self.source_index, self.details, self.warnings)


def _source_moments(source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # Blockwise in float64: one pass over a 250k x 768 matrix with ~12 MB of temporaries.
    total = torch.zeros(source.shape[1], dtype=torch.float64)
    total_sq = torch.zeros(source.shape[1], dtype=torch.float64)
    for i in range(0, source.shape[0], 2048):
        block = source[i : i + 2048].to(torch.float64)
        total += block.sum(0)
        total_sq += (block * block).sum(0)
    n = max(source.shape[0], 2)
    mean = total / n
    var = (total_sq - n * mean * mean) / (n - 1)
    return mean.to(torch.float32), var.clamp_min(0).sqrt().to(torch.float32)


def _copy_known_tokens(
    rows: _Rows, source_vocab: Vocab, target_vocab: Vocab, ignore_case: bool
) -> dict[int, int]:
    special = special_token_map(source_vocab, target_vocab)
    rows.copy(special, SPECIAL)
    lexical = {t: s for t, s in lexical_overlap(source_vocab, target_vocab, ignore_case=ignore_case).items()}
    lexical = {t: s for t, s in lexical.items() if t not in special}
    rows.copy(lexical, LEXICAL)
    rows.details["special_tokens"] = {
        str(target_vocab.tokens[t]): str(source_vocab.tokens[s]) for t, s in sorted(special.items())
    }
    return lexical


def _check_shapes(source_embeddings: torch.Tensor, source_vocab: Vocab) -> None:
    if source_embeddings.ndim != 2:
        raise ValueError(f"source embeddings must be a matrix, got shape {tuple(source_embeddings.shape)}")
    if source_embeddings.shape[0] != len(source_vocab):
        raise ValueError(
            f"source embeddings have {source_embeddings.shape[0]} rows but the source vocabulary has "
            f"{len(source_vocab)} ids; build it with Vocab.from_tokenizer(tokenizer, size=rows)"
        )


def _positions(vectors: TokenVectors, limit: int) -> tuple[np.ndarray, torch.Tensor]:
    """Ids (below `limit`) that have a vector, and those vectors as a float32 tensor."""
    keep = vectors.ids < limit
    return vectors.ids[keep], torch.from_numpy(np.ascontiguousarray(vectors.vectors[keep], dtype=np.float32))


def _mix(
    rows: _Rows,
    target_ids: np.ndarray,
    target_space: torch.Tensor,
    anchor_origins: tuple[int, ...],
    max_elements: int,
    progress: Callable[[int], None] | None,
) -> None:
    """Sparsemax step shared by FOCUS and UniBridge: every still-unset target token with a vector gets
    the sparsemax(cosine)-weighted sum of the rows of the anchor tokens (target fastText space)."""
    origin = rows.origin[torch.from_numpy(target_ids)]
    is_anchor = torch.zeros_like(origin, dtype=torch.bool)
    for code in anchor_origins:
        is_anchor |= origin == code
    is_query = origin == RANDOM
    n_anchor, n_query = int(is_anchor.sum()), int(is_query.sum())
    rows.details["sparsemax"] = {"anchors": n_anchor, "queries": n_query}
    if n_query == 0:
        return
    if n_anchor == 0:
        rows.warnings.append(
            "no initialised target token has a fastText vector, so no sparsemax mixtures were possible; "
            f"{n_query} tokens fall back to random rows"
        )
        return
    unit = normalize_rows(target_space)
    anchor_ids = torch.from_numpy(target_ids)[is_anchor]
    query_ids = torch.from_numpy(target_ids)[is_query]
    mixed, support = sparsemax_mixture(
        unit[is_query], unit[is_anchor], rows.out[anchor_ids], max_elements=max_elements, progress=progress
    )
    rows.out[query_ids] = mixed
    rows.origin[query_ids] = SPARSEMAX
    rows.details["sparsemax"].update(
        mean_support=round(float(support.float().mean()), 3), max_support=int(support.max())
    )


# ---------------------------------------------------------------------- the methods
def random_init(
    num_tokens: int, hidden_size: int, *, seed: int = 0, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, RowSources]:
    """Baseline: every row Xavier-normal, ``std = sqrt(2 / (num_tokens + hidden_size))``; nothing from the
    base (not even special tokens), which is what makes it the floor the other methods are measured
    against."""
    gen = torch.Generator().manual_seed(seed)
    out = torch.empty((num_tokens, hidden_size), dtype=torch.float32)
    torch.nn.init.xavier_normal_(out, generator=gen)
    origin = torch.full((num_tokens,), RANDOM, dtype=torch.int8)
    return out.to(dtype), RowSources(origin, torch.full((num_tokens,), -1, dtype=torch.long))


def overlap_init(
    source_embeddings: torch.Tensor,
    source_vocab: Vocab,
    target_vocab: Vocab,
    *,
    seed: int = 0,
    ignore_case: bool = True,
) -> tuple[torch.Tensor, RowSources]:
    """Baseline: copy the rows of shared tokens (and special tokens by role); every other row is drawn
    from a normal distribution fitted per dimension to the source embeddings."""
    _check_shapes(source_embeddings, source_vocab)
    rows = _Rows(len(target_vocab), source_embeddings)
    _copy_known_tokens(rows, source_vocab, target_vocab, ignore_case)
    rows.fill_random(seed)
    return rows.finish(source_embeddings.dtype)


def focus_init(
    source_embeddings: torch.Tensor,
    source_vocab: Vocab,
    target_vocab: Vocab,
    target_vectors: TokenVectors,
    *,
    seed: int = 0,
    ignore_case: bool = True,
    max_elements: int = DEFAULT_MIXTURE_ELEMENTS,
    progress: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, RowSources]:
    """FOCUS (Dobler & de Melo, 2023): shared tokens copied; every other target token that has a fastText
    vector gets ``sum_j sparsemax(cos(f_t, f_j)) * E[j]`` over the shared tokens j (cosine in the
    target-tokenized fastText space); tokens without a vector fall back to the fitted normal."""
    _check_shapes(source_embeddings, source_vocab)
    rows = _Rows(len(target_vocab), source_embeddings)
    _copy_known_tokens(rows, source_vocab, target_vocab, ignore_case)
    t_ids, t_vec = _positions(target_vectors, len(target_vocab))
    _mix(rows, t_ids, t_vec, (LEXICAL,), max_elements, progress)
    rows.fill_random(seed)
    return rows.finish(source_embeddings.dtype)


def unibridge_init(
    source_embeddings: torch.Tensor,
    source_vocab: Vocab,
    target_vocab: Vocab,
    source_vectors: TokenVectors,
    target_vectors: TokenVectors,
    *,
    alignment: Alignment = "procrustes",
    seed: int = 0,
    ignore_case: bool = True,
    block: int = DEFAULT_BLOCK,
    max_elements: int = DEFAULT_MIXTURE_ELEMENTS,
    min_anchors: int = MIN_ANCHORS,
    progress: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, RowSources]:
    """UniBridge §2.2 (Pham et al., 2024): lexical copy, semantic mutual-nearest-neighbour copy, sparsemax.

    1. Special tokens by role and lexically shared tokens (markers normalised) copy their base rows.
    2. `source_vectors` are fastText vectors of the corpus tokenized by the base tokenizer,
       `target_vectors` of the corpus tokenized by the new one. Between the target tokens and base
       tokens that are not shared (and have vectors), mutual nearest neighbours by cosine copy the base
       row. Only base tokens that occur in the base-tokenized corpus have vectors, so only they compete.
    3. Every other target token with a vector gets the sparsemax(cosine)-weighted sum of the rows of
       the tokens set in 1-2 (cosines in the target fastText space, as in FOCUS).
    4. The rest (no vector: never seen in the corpus) falls back to N(mean, std) of the base rows.

    **Deviation from the paper** (`alignment="procrustes"`, the default): the two fastText spaces are
    trained separately, so their coordinates are unrelated and cross-space cosines are meaningless. We
    first centre and length-normalise both and rotate the base space onto the target space by orthogonal
    Procrustes fitted on the shared tokens that have vectors in both. ``alignment="none"`` compares
    the raw spaces, as the paper and its reference code do. With fewer than `min_anchors` shared tokens
    there is nothing to fit and the spaces stay unaligned (reported as a warning).

    Memory: similarity is computed in `block` x `block` tiles keeping the top-1 per row and column;
    never a dense |V_target| x |V_source| matrix.
    """
    if alignment not in ("procrustes", "none"):
        raise ValueError(f"alignment must be 'procrustes' or 'none', got {alignment!r}")
    _check_shapes(source_embeddings, source_vocab)
    if (
        source_vectors.vectors.shape[1] != target_vectors.vectors.shape[1]
        and len(source_vectors)
        and len(target_vectors)
    ):
        raise ValueError(
            f"the fastText spaces differ in size ({source_vectors.vectors.shape[1]} vs "
            f"{target_vectors.vectors.shape[1]}); train both with the same dim"
        )
    rows = _Rows(len(target_vocab), source_embeddings)
    lexical = _copy_known_tokens(rows, source_vocab, target_vocab, ignore_case)

    t_ids, t_vec = _positions(target_vectors, len(target_vocab))
    s_ids, s_vec = _positions(source_vectors, len(source_vocab))
    if s_ids.size:  # base special tokens are paired by role, never by meaning
        keep = ~np.isin(
            s_ids, np.fromiter(source_vocab.special_ids, dtype=np.int64, count=len(source_vocab.special_ids))
        )
        s_ids, s_vec = s_ids[keep], s_vec[torch.from_numpy(keep)]
    t_row = {int(t): k for k, t in enumerate(t_ids.tolist())}
    s_row = {int(s): k for k, s in enumerate(s_ids.tolist())}

    # -- align the base-tokenized space onto the target-tokenized one
    anchors = [(t_row[t], s_row[s]) for t, s in sorted(lexical.items()) if t in t_row and s in s_row]
    info: dict[str, Any] = {"method": alignment, "anchors": len(anchors)}
    center = alignment == "procrustes"
    t_space = normalize_rows(t_vec, center=center)
    s_space = normalize_rows(s_vec, center=center)
    del s_vec  # only the normalised copy is needed from here on (it can be 250k x dim)
    if alignment == "procrustes":
        if len(anchors) >= min_anchors:
            a_t = torch.tensor([a[0] for a in anchors])
            a_s = torch.tensor([a[1] for a in anchors])
            info["anchor_cosine_before"] = round(float((s_space[a_s] * t_space[a_t]).sum(1).mean()), 4)
            s_space = s_space @ procrustes(s_space[a_s], t_space[a_t])
            info["anchor_cosine_after"] = round(float((s_space[a_s] * t_space[a_t]).sum(1).mean()), 4)
            dim = t_space.shape[1]
            if len(anchors) < dim:
                info["underdetermined"] = True
                rows.warnings.append(
                    f"Procrustes alignment from {len(anchors)} shared tokens cannot determine a rotation "
                    f"of the {dim}-dimensional fastText space: only their span is aligned (the anchor "
                    "cosine after it says nothing about the rest), so semantic pairs are unreliable; "
                    f"train fastText with a dimension of at most {len(anchors)} for this language"
                )
        else:
            info["skipped"] = True
            rows.warnings.append(
                f"Procrustes alignment skipped: only {len(anchors)} shared tokens have vectors in both "
                f"fastText spaces (need {min_anchors}); semantic pairs come from unaligned spaces"
            )
    rows.details["alignment"] = info

    # -- semantic step: mutual nearest neighbours among the tokens not shared lexically
    t_cand = (rows.origin[torch.from_numpy(t_ids)] == RANDOM).numpy() if t_ids.size else np.zeros(0, bool)
    used_sources = set(lexical.values())
    s_cand = np.array([int(s) not in used_sources for s in s_ids.tolist()], dtype=bool)
    t_space = t_space[torch.from_numpy(t_cand)]
    s_space = s_space[torch.from_numpy(s_cand)]
    i, j = mutual_nearest_neighbours(t_space, s_space, block=block, progress=progress)
    semantic = dict(zip(t_ids[t_cand][i.numpy()].tolist(), s_ids[s_cand][j.numpy()].tolist(), strict=True))
    rows.copy(semantic, SEMANTIC)
    mean_cos = round(float((t_space[i] * s_space[j]).sum(1).mean()), 4) if semantic else None
    del t_space, s_space
    rows.details["semantic"] = {
        "target_candidates": int(t_cand.sum()),
        "source_candidates": int(s_cand.sum()),
        "pairs": len(semantic),
        "mean_cosine": mean_cos,
    }

    # -- sparsemax mixtures of the aligned (lexical + semantic) rows, then the random fallback
    _mix(rows, t_ids, t_vec, (LEXICAL, SEMANTIC), max_elements, progress)
    rows.fill_random(seed)
    return rows.finish(source_embeddings.dtype)


METHODS: tuple[str, ...] = ("unibridge", "focus", "overlap", "random")
