"""Average log probability (ALP) of a corpus under a tokenizer, UniBridge §2.1.

ALP(D, t) = 1/|D| · Σ_{s ∈ D} Σ_{x ∈ t(s)} log p(x),   p(x) = count(x) / Σ_y count(y),

where the counts are those of the tokens of the whole corpus D tokenized by t. Because every
token of every sentence contributes log p(x) once, the double sum equals Σ_x count(x)·log p(x):
`average_log_probability` uses that identity (one bincount, no Python loop over tokens), while
`reference_alp` is the reference implementation's loop, kept for the naive mode and to test that
the two agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy loads on first use, so `crossling --help` stays fast
    import numpy as np


def average_log_probability(token_ids: Sequence[Sequence[int]], vocab_size: int | None = None) -> float:
    """ALP of a tokenized corpus: one list of token ids per sentence.

    Sentences with no tokens still count in |D| (they add log 1 = 0), as in the reference.
    """
    import numpy as np

    n_sentences = len(token_ids)
    if n_sentences == 0:
        raise ValueError("average_log_probability: the corpus has no sentences")
    lengths = np.fromiter((len(ids) for ids in token_ids), dtype=np.int64, count=n_sentences)
    total = int(lengths.sum())
    if total == 0:
        return 0.0
    flat = np.fromiter((i for ids in token_ids for i in ids), dtype=np.int64, count=total)
    counts = np.bincount(flat, minlength=vocab_size or 0)
    return alp_from_counts(counts, n_sentences)


def alp_from_counts(counts: np.ndarray | Sequence[int], n_sentences: int) -> float:
    """ALP from token counts over the corpus: Σ_x c_x·log(c_x / N) / |D|, with N = Σ_x c_x."""
    import numpy as np

    counts = np.asarray(counts, dtype=np.float64)
    used = counts[counts > 0]
    total = used.sum()
    if total == 0:
        return 0.0
    # log(c/N) as the reference computes it (divide, then log), so the values agree to ~1e-15.
    return float(np.dot(used, np.log(used / total)) / n_sentences)


def reference_alp(lines: Iterable[str], encode, vocab_size: int) -> float:
    """ALP computed the way the UniBridge reference code does it (`compute_alp`): a Python loop.

    encode: str -> list[int] (e.g. ``SentencePieceProcessor.encode_as_ids``); each line is
    stripped first, as in the reference. Slow on purpose: this is the baseline of the naive mode.
    """
    words = dict.fromkeys(range(vocab_size), 0)
    all_tokens = 0
    tokenized = []
    for line in lines:
        ids = encode(line.strip())
        all_tokens += len(ids)
        for idx in ids:
            words[idx] += 1
        tokenized.append(ids)
    if not tokenized:
        raise ValueError("reference_alp: the corpus has no sentences")
    if all_tokens == 0:
        return 0.0
    for idx in words:
        words[idx] /= all_tokens
    probs = []
    for ids in tokenized:
        p = 0.0
        for idx in ids:
            p += math.log(words[idx])
        probs.append(p)
    return sum(probs) / len(probs)
