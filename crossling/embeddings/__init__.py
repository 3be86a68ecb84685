"""Embedding initialisation for a new vocabulary (UniBridge §2.2, FOCUS and baselines).

Public API::

    initialize(base, target_tokenizer, corpus, method="unibridge", alignment="procrustes", seed=0,
               fasttext=FastTextConfig(...), cache_dir=None) -> (embeddings, InitReport)
    save_initialization(out_dir, embeddings, report) / load_initialization(out_dir)

The methods are pure functions over tensors, vocabularies and fastText vectors
(:func:`unibridge_init`, :func:`focus_init`, :func:`overlap_init`, :func:`random_init`); the building
blocks (:func:`normalize_token`, :func:`lexical_overlap`, :func:`special_token_map`,
:func:`mutual_nearest_neighbours`, :func:`sparsemax`, :func:`procrustes`) are exported for reuse.

Where we differ from UniBridge §2.2 and its reference code, on purpose:

* ``alignment="procrustes"`` (default): the base-tokenized and target-tokenized fastText spaces are
  rotated onto each other (orthogonal Procrustes on the shared tokens, after centring and length
  normalisation) before mutual nearest neighbours are searched; ``"none"`` is the paper.
* Mutual nearest neighbours are searched only among tokens that are not lexically shared (DESIGN.md;
  the reference code lets every base token compete) and only base tokens that occur in the corpus
  (the only ones with a fastText vector; the reference gives the others random vectors).
* fastText: skipgram as the paper says (the reference code trains cbow), ``min_count=1`` and ``neg=10``
  as the reference, no character n-grams (memory), our own seeded initial vectors (fastText 0.9's
  initialisation leaves rows unset without n-grams), one thread for determinism.
* Special tokens are paired by role (``<s>`` takes ``[CLS]``'s row), never by string.
* Lexical overlap ignores case after an exact pass (as the reference's "fuzzy" match), and byte-level
  BPE pieces are decoded to text before matching.
* Everything is chunked: no |V_target| x |V_source| matrix is ever built.
"""

from __future__ import annotations

from crossling.embeddings.api import (
    EMBEDDINGS_FILE,
    REPORT_FILE,
    InitReport,
    default_cache_dir,
    initialize,
    load_base_embeddings,
    load_initialization,
    load_tokenizer,
    save_initialization,
)
from crossling.embeddings.errors import EmbeddingInitError
from crossling.embeddings.fasttext_vectors import (
    FastTextConfig,
    TokenVectors,
    corpus_fingerprint,
    tokenizer_fingerprint,
    train_token_vectors,
)
from crossling.embeddings.methods import (
    METHODS,
    ORIGINS,
    RowSources,
    focus_init,
    overlap_init,
    random_init,
    unibridge_init,
)
from crossling.embeddings.similarity import (
    mutual_nearest_neighbours,
    nearest_neighbours,
    normalize_rows,
    procrustes,
    sparsemax,
    sparsemax_mixture,
)
from crossling.embeddings.tokens import (
    Vocab,
    detect_marker_style,
    lexical_overlap,
    normalize_token,
    special_token_map,
)

__all__ = [
    "EMBEDDINGS_FILE",
    "METHODS",
    "ORIGINS",
    "REPORT_FILE",
    "EmbeddingInitError",
    "FastTextConfig",
    "InitReport",
    "RowSources",
    "TokenVectors",
    "Vocab",
    "corpus_fingerprint",
    "default_cache_dir",
    "detect_marker_style",
    "focus_init",
    "initialize",
    "lexical_overlap",
    "load_base_embeddings",
    "load_initialization",
    "load_tokenizer",
    "mutual_nearest_neighbours",
    "nearest_neighbours",
    "normalize_rows",
    "normalize_token",
    "overlap_init",
    "procrustes",
    "random_init",
    "save_initialization",
    "sparsemax",
    "sparsemax_mixture",
    "special_token_map",
    "tokenizer_fingerprint",
    "train_token_vectors",
    "unibridge_init",
]
