"""Token-level fastText vectors: the auxiliary embedding spaces of UniBridge and FOCUS.

The target corpus is tokenized by a tokenizer (the base model's, or the new one), written one sentence
per line with tokens separated by spaces, and a fastText model is trained on it; every token that occurs
at least ``min_count`` times gets a vector. Results are cached on disk by (corpus hash, tokenizer hash,
settings, seed), so a second run with the same inputs trains nothing.

Two things about the `fasttext` package (0.9.x) shape this module:

* Its random initialisation fills only the first ``threads/10`` of the input matrix
  (``DenseMatrix::uniformThread`` divides the matrix into 10 blocks but starts one per thread). With
  the default character n-grams the word rows sit in that first tenth, but with n-grams off the rest of
  the word rows start from uninitialised memory, and training fails with "Encountered NaN" or, worse,
  leaves tokens at zero. We therefore always hand fastText its initial vectors ourselves, through
  ``pretrainedVectors``: uniform in ``[-1/dim, 1/dim]`` as fastText intends, drawn from our seed, for
  every word of its dictionary (its end-of-line word ``</s>`` included).
* ``train_unsupervised`` does not expose fastText's ``seed``; we set it on the argument object. With
  ``threads=1`` (the default) training is then bit-for-bit deterministic. More threads train faster but
  Hogwild updates make the vectors differ from run to run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from crossling.config import Config, field
from crossling.embeddings.errors import EmbeddingInitError
from crossling.errors import ConfigError, DataFormatError

logger = logging.getLogger(__name__)

Corpus = str | os.PathLike[str] | Sequence[str]
CACHE_FORMAT = 2  # 2: </s> initialised too
_MAX_LINE_TOKENS = 1000  # fastText silently truncates lines after 1024 words; we wrap long lines instead
_EOS = "</s>"  # fastText's own end-of-line word


@dataclasses.dataclass(frozen=True)
class FastTextConfig(Config):
    """fastText settings for the token-level auxiliary spaces (UniBridge §2.2: skipgram, dim 300, 3 epochs).

    Defaults follow the paper where it is explicit and the UniBridge reference code otherwise
    (``min_count=1``, ``neg=10``). Character n-grams are off by default: tokens are already subwords,
    only in-vocabulary tokens get used, and n-gram buckets (2M x dim floats by default in fastText)
    would break the memory bound; set ``minn``/``maxn`` to turn them on.
    """

    dim: int = field(300, low=1, high=4096, doc="vector size")
    epochs: int = field(3, low=1, doc="passes over the corpus")
    model: Literal["skipgram", "cbow"] = field(
        "skipgram", doc="fastText model (the reference code used cbow)"
    )
    window: int = field(5, low=1, doc="context window")
    min_count: int = field(1, low=1, doc="tokens seen fewer times get no vector (and fall back to random)")
    negatives: int = field(10, low=1, doc="negative samples")
    lr: float = field(0.05, low=0.0, doc="learning rate")
    subsample: float = field(1e-4, low=0.0, doc="fastText -t: sampling threshold for frequent tokens")
    minn: int = field(0, low=0, doc="shortest character n-gram (0: none)")
    maxn: int = field(0, low=0, doc="longest character n-gram (0: none)")
    bucket: int = field(200_000, low=1, doc="n-gram hash buckets (used only when maxn > 0)")
    threads: int = field(1, low=1, doc="training threads; only 1 is deterministic")
    min_sentences: int = field(10, low=1, doc="refuse corpora with fewer non-empty lines")

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "unibridge": {},
        "fast": {"dim": 100},
        "test": {"dim": 16, "epochs": 2},
    }

    def validate(self) -> None:
        if self.minn > self.maxn:
            raise ConfigError(f"FastTextConfig: minn ({self.minn}) > maxn ({self.maxn})")


@dataclasses.dataclass
class TokenVectors:
    """fastText vectors of the tokens one tokenizer produced on a corpus.

    ``ids`` are token ids in ascending order; ``vectors[k]`` belongs to ``ids[k]``. Tokens that never
    occurred (or fewer than ``min_count`` times) have no vector.
    """

    ids: np.ndarray
    vectors: np.ndarray
    corpus_tokens: int = 0
    cache_hit: bool = False
    cache_key: str = ""
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, dtype=np.int64)
        self.vectors = np.asarray(self.vectors, dtype=np.float32)
        if self.vectors.ndim != 2 or self.vectors.shape[0] != self.ids.shape[0]:
            raise ValueError(f"TokenVectors: {len(self.ids)} ids but vectors of shape {self.vectors.shape}")
        if self.ids.size and np.any(np.diff(self.ids) <= 0):
            order = np.argsort(self.ids, kind="stable")
            self.ids, self.vectors = self.ids[order], self.vectors[order]
            if np.any(np.diff(self.ids) == 0):
                raise ValueError("TokenVectors: duplicate token ids")

    def __len__(self) -> int:
        return int(self.ids.shape[0])


# ---------------------------------------------------------------------- corpus
def iter_corpus(corpus: Corpus) -> Iterator[str]:
    """Non-empty, stripped lines of a text file (one sentence per line) or of a sequence of strings."""
    if isinstance(corpus, (str, os.PathLike)):
        path = Path(corpus)
        if not path.is_file():
            raise EmbeddingInitError(f"corpus file {path} does not exist (expected one sentence per line)")
        with path.open("rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                try:
                    line = raw.decode("utf-8").strip()
                except UnicodeDecodeError:
                    raise DataFormatError(path, lineno, "not valid UTF-8") from None
                if line:
                    yield line
    else:
        for line in corpus:
            if not isinstance(line, str):
                raise EmbeddingInitError(f"corpus must hold strings, got {type(line).__name__}")
            line = line.strip()
            if line:
                yield line


def corpus_fingerprint(corpus: Corpus) -> tuple[int, str]:
    """(number of non-empty lines, sha256 of those lines) — the corpus part of the cache key."""
    digest = hashlib.sha256()
    n = 0
    for line in iter_corpus(corpus):
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
        n += 1
    return n, digest.hexdigest()


# ---------------------------------------------------------------------- tokenizer
class _Encoder:
    """Token ids of sentences: no special tokens, truncation or padding, whatever the tokenizer's state."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.original = getattr(tokenizer, "backend_tokenizer", None)
        self._copy: Any = None

    def _backend(self) -> Any:
        # A private copy (built on first use: for a 250k vocabulary it costs ~300 MB, which a cache
        # hit never needs): a tokenizer once called with truncation keeps it in its backend.
        if self._copy is None:
            from tokenizers import Tokenizer

            self._copy = Tokenizer.from_str(self.original.to_str())
            self._copy.no_truncation()
            self._copy.no_padding()
        return self._copy

    def fingerprint(self) -> str:
        if self.original is not None:
            clean = self.original.truncation is None and self.original.padding is None
            text = (self.original if clean else self._backend()).to_str()
        else:
            text = type(self.tokenizer).__name__ + json.dumps(sorted(self.tokenizer.get_vocab().items()))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def encode(self, lines: list[str]) -> list[list[int]]:
        if self.original is not None:
            return [e.ids for e in self._backend().encode_batch(lines, add_special_tokens=False)]
        return [self.tokenizer.convert_tokens_to_ids(self.tokenizer.tokenize(line)) for line in lines]


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """sha256 of the tokenizer's full definition (vocabulary, normaliser, pre-tokeniser, model)."""
    return _Encoder(tokenizer).fingerprint()


def _fasttext_words(tokens: Sequence[str | None]) -> list[str]:
    """The word fastText sees for each token id: the token itself, unless fastText would split or
    misread it (whitespace inside, its own ``</s>``), then a placeholder unique to the id."""
    words = []
    for i, tok in enumerate(tokens):
        if not tok or tok == _EOS or any(c.isspace() or c == "\0" for c in tok):
            words.append(f"<crossling-token-{i}>")
        else:
            words.append(tok)
    return words


def _batched(it: Iterator[str], n: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for x in it:
        batch.append(x)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


# ---------------------------------------------------------------------- training + cache
def _cache_key(corpus_hash: str, tokenizer_hash: str, config: FastTextConfig, seed: int, rows: int) -> str:
    from importlib import metadata

    try:
        ft_version = metadata.version("fasttext")
    except metadata.PackageNotFoundError:  # pragma: no cover
        ft_version = "unknown"
    settings = {k: v for k, v in config.to_dict().items() if k != "min_sentences"}
    blob = json.dumps(
        {
            "format": CACHE_FORMAT,
            "corpus": corpus_hash,
            "tokenizer": tokenizer_hash,
            "fasttext": settings,
            "seed": seed,
            "rows": rows,  # ids at or beyond it are left out of the training text
            "fasttext_version": ft_version,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:40]


def _load_cached(path: Path, key: str, dim: int) -> TokenVectors | None:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        data = load_file(str(path))
        vectors = TokenVectors(
            ids=data["ids"], vectors=data["vectors"], corpus_tokens=int(data["corpus_tokens"][0])
        )
    except (OSError, KeyError, ValueError, SafetensorError) as err:
        logger.warning("ignoring unreadable fastText cache %s (%s); retraining", path, err)
        return None
    if vectors.vectors.shape[1] != dim and len(vectors):
        return None
    vectors.cache_hit = True
    vectors.cache_key = key
    return vectors


def _save_cached(path: Path, vectors: TokenVectors) -> None:
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        save_file(
            {
                "ids": vectors.ids,
                "vectors": vectors.vectors,
                "corpus_tokens": np.array([vectors.corpus_tokens], dtype=np.int64),
            },
            tmp,
            metadata={"format": "crossling.fasttext-token-vectors", "version": str(CACHE_FORMAT)},
        )
        os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the new one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _train_fasttext(text_path: Path, init_path: Path, config: FastTextConfig, seed: int, verbose: int) -> Any:
    import fasttext_pybind
    from fasttext import FastText

    args = dict(FastText.unsupervised_default)
    args.update(
        input=str(text_path),
        model=config.model,
        lr=config.lr,
        dim=config.dim,
        ws=config.window,
        epoch=config.epochs,
        minCount=config.min_count,
        minn=config.minn,
        maxn=config.maxn,
        neg=config.negatives,
        bucket=config.bucket,
        thread=config.threads,
        t=config.subsample,
        verbose=verbose,
        pretrainedVectors=str(init_path),
    )
    # Same steps as fasttext.train_unsupervised, plus the seed it does not let through.
    built = FastText._build_args(args, set(args))
    built.seed = int(seed)
    model = FastText._FastText(args=built)
    fasttext_pybind.train(model.f, built)
    model.set_args(model.f.getArgs())
    return model


def train_token_vectors(
    corpus: Corpus,
    tokenizer: Any,
    config: FastTextConfig | None = None,
    *,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    corpus_hash: str | None = None,
    num_rows: int | None = None,
    progress: bool = False,
    desc: str = "tokens",
) -> TokenVectors:
    """Tokenize `corpus` with `tokenizer`, train fastText on it, return the vectors of the tokens it saw.

    `cache_dir`: where vectors are kept between runs (None: no cache). `num_rows`: ignore token ids at
    or beyond it (ids the embedding matrix has no row for). Deterministic for a seed with one thread.
    """
    config = config or FastTextConfig()
    start = time.perf_counter()
    encoder = _Encoder(tokenizer)
    if corpus_hash is None:
        _, corpus_hash = corpus_fingerprint(corpus)
    tokenizer_hash = encoder.fingerprint()
    vocab: dict[str, int] = dict(tokenizer.get_vocab())
    size = max(len(tokenizer), max(vocab.values(), default=-1) + 1)
    limit = size if num_rows is None else min(size, num_rows)
    key = _cache_key(corpus_hash, tokenizer_hash, config, seed, limit)
    cache_path = Path(cache_dir) / f"{key}.safetensors" if cache_dir is not None else None
    if cache_path is not None and cache_path.is_file():
        cached = _load_cached(cache_path, key, config.dim)
        if cached is not None:
            cached.seconds = time.perf_counter() - start
            logger.info("fastText vectors (%s) from cache %s", desc, cache_path)
            return cached

    table: list[str | None] = [None] * size
    for tok, i in vocab.items():
        table[i] = tok
    words = _fasttext_words(table)
    counts = np.zeros(size, dtype=np.int64)

    tmp_parent = None
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        tmp_parent = str(cache_dir)
    with tempfile.TemporaryDirectory(prefix=".crossling-fasttext-", dir=tmp_parent) as tmp:
        text_path = Path(tmp) / "tokenized.txt"
        bar = _progress_bar(progress, f"tokenizing ({desc})", "lines")
        with text_path.open("w", encoding="utf-8") as fh:
            for batch in _batched(iter_corpus(corpus), 1000):
                seen: list[int] = []
                for ids in encoder.encode(batch):
                    ids = [i for i in ids if 0 <= i < limit]
                    seen.extend(ids)
                    for k in range(0, len(ids), _MAX_LINE_TOKENS):
                        fh.write(" ".join(words[i] for i in ids[k : k + _MAX_LINE_TOKENS]))
                        fh.write("\n")
                if seen:
                    counts += np.bincount(np.asarray(seen, dtype=np.int64), minlength=size)
                if bar is not None:
                    bar.update(len(batch))
        if bar is not None:
            bar.close()
        del encoder  # the tokenizer copy is not needed while fastText trains
        kept = np.flatnonzero(counts >= config.min_count)
        if kept.size == 0:
            raise EmbeddingInitError(
                f"the corpus tokenized by the {desc} tokenizer has no token that occurs at least "
                f"{config.min_count} time(s); use a larger corpus or a lower min_count"
            )
        # Our own initial vectors: see the module docstring (fastText's init leaves most rows unset).
        init_path = Path(tmp) / "init.vec"
        # Seeded by the tokenizer too: two spaces started from the same draws would share their
        # coordinates row by row (fastText moves little from its start in 3 epochs on a small corpus),
        # and that coincidence would pass for cross-space similarity when the spaces are compared.
        rng = np.random.default_rng([seed, int(tokenizer_hash[:12], 16)])
        bound = 1.0 / config.dim
        row_format = "%s " + " ".join(["%.4g"] * config.dim) + "\n"
        with init_path.open("w", encoding="utf-8") as fh:
            fh.write(f"{kept.size + 1} {config.dim}\n")
            # fastText's end-of-line word is in its dictionary too: its row needs a start as well
            fh.write(row_format % (_EOS, *rng.uniform(-bound, bound, size=config.dim).tolist()))
            for k in range(0, kept.size, 4096):
                block = rng.uniform(-bound, bound, size=(min(4096, kept.size - k), config.dim))
                for i, row in zip(kept[k : k + 4096].tolist(), block.tolist(), strict=True):
                    fh.write(row_format % (words[i], *row))
        logger.info(
            "training fastText (%s): %d tokens, %d distinct, dim %d, %d epoch(s)",
            desc,
            int(counts.sum()),
            kept.size,
            config.dim,
            config.epochs,
        )
        try:
            model = _train_fasttext(text_path, init_path, config, seed, verbose=2 if progress else 0)
        except (RuntimeError, ValueError) as err:
            raise EmbeddingInitError(
                f"fastText training on the {desc}-tokenized corpus failed: {err}"
            ) from None

    ft_words = model.get_words(include_freq=False)
    word_to_id = {words[i]: i for i in kept.tolist()}
    if config.maxn == 0:
        matrix = model.get_input_matrix()[: len(ft_words)]
    else:  # a word's vector is the mean of its own row and its n-gram rows
        matrix = np.stack([model.get_word_vector(w) for w in ft_words]) if ft_words else None
    rows = [(word_to_id[w], k) for k, w in enumerate(ft_words) if w in word_to_id]
    del model
    rows.sort()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    vectors = (
        np.ascontiguousarray(matrix[[r[1] for r in rows]], dtype=np.float32)
        if rows
        else np.zeros((0, config.dim), dtype=np.float32)
    )
    del matrix
    if not np.all(np.isfinite(vectors)):
        raise EmbeddingInitError(f"fastText produced non-finite vectors on the {desc}-tokenized corpus")
    result = TokenVectors(ids=ids, vectors=vectors, corpus_tokens=int(counts.sum()), cache_key=key)
    if cache_path is not None:
        _save_cached(cache_path, result)
    result.seconds = time.perf_counter() - start
    return result


def _progress_bar(enabled: bool, desc: str, unit: str, total: int | None = None) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)
