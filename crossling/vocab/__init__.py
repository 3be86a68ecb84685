"""Target-language vocabulary: UniBridge's ALP-based size search and XLM-R style tokenizers.

    from crossling.vocab import search_vocab_size, save_tokenizer
    result = search_vocab_size("khm.txt")            # paper defaults: 7000 / +1000 / 60000 / ε=5
    save_tokenizer(result.model_proto, "tok/")       # AutoTokenizer.from_pretrained("tok/") loads it

`search_vocab_size(..., naive=True)` runs the reference procedure; the default fast mode makes the
same choice with the same trace (see `crossling.vocab.search` for the rule and what differs).
"""

from __future__ import annotations

from crossling.vocab.alp import alp_from_counts, average_log_probability, reference_alp
from crossling.vocab.hf import (
    build_tokenizer,
    check_out_dir,
    save_tokenizer,
    save_vocabulary,
    train_tokenizer,
    write_tokenizer_files,
)
from crossling.vocab.plot import alp_svg
from crossling.vocab.search import (
    SPM_MODEL_NAME,
    SearchStep,
    VocabSearchResult,
    gain_below,
    prepare_corpus,
    search_vocab_size,
    size_grid,
    train_fixed_size,
)
from crossling.vocab.trainer import DEFAULT_TRAIN_THREADS, CorpusTooSmallError, train_unigram

__all__ = [
    "DEFAULT_TRAIN_THREADS",
    "SPM_MODEL_NAME",
    "CorpusTooSmallError",
    "SearchStep",
    "VocabSearchResult",
    "alp_from_counts",
    "alp_svg",
    "average_log_probability",
    "build_tokenizer",
    "check_out_dir",
    "gain_below",
    "prepare_corpus",
    "reference_alp",
    "save_tokenizer",
    "save_vocabulary",
    "search_vocab_size",
    "size_grid",
    "train_fixed_size",
    "train_tokenizer",
    "train_unigram",
    "write_tokenizer_files",
]
