"""Vocabulary size search: UniBridge Algorithm 1 (Pham et al., 2024), faithful and fast.

The rule, as the reference implementation (``UniBridge/MultiTok/train.py``, ``use_alp=True``) runs it:

1. Sizes v = start, start+step, ... up to and including max_size.
2. At each v, train a SentencePiece unigram model on the corpus and compute ALP(v) (see `alp`).
3. Stop at the first v whose gain over the previous size is small, |ALP(v) − ALP(v−step)| < ε,
   and **choose v**: the model the reference keeps is the one it trained last, i.e. the first
   size whose gain fell below ε, not the size before it.
4. If SentencePiece cannot build v pieces from the corpus ("Vocabulary size too high"), stop and
   choose the previous size v−step, the largest size of the grid the corpus supports; the result
   says so (``stop_reason="capped"``) and reports the largest size SentencePiece could build
   (``max_feasible_size``, parsed from its message: a size off the grid, not used).
5. If no size met the criterion, choose the last size of the grid (``stop_reason="max_size"``).

Deliberate differences from the reference (all parameters of the paper are kept):

- Blank lines are not sentences: they are dropped before training and before ALP (the
  reference counts them in |D| with log-probability 0, which shrinks every ALP gain by the
  fraction of blank lines and so depends on how a corpus file happens to be laid out).
- When the *first* size is already too large for the corpus the reference silently retrains
  at start − step, below the requested range; here that is a `CorpusTooSmallError` naming the
  largest size the corpus supports.
- The reference compares |ΔALP| with ε; the paper writes the difference ALP(v) − ALP(v−δ).
  ALP grows with the vocabulary on every corpus we measured, where the two are the same; the
  absolute value is the default (``absolute=True``) and ``absolute=False`` gives the signed rule
  (a drop in ALP then also stops the search).

Naive mode is the reference procedure: sequential, a new SentencePiece training from scratch at
every size (model written to disk), ALP by a Python loop over tokens reading the corpus file
again, and on an infeasible size a retraining of the previous size. Fast mode computes the same
thing (the same models, the same ALP up to float rounding, hence the same trace and choice):

- SentencePiece training dominates (>80 % of the naive time on real corpora); it cannot be
  shared between sizes through SentencePiece's API and its result depends on its thread count,
  so each size still gets one full training, with the same options. Fast mode trains `workers`
  consecutive sizes at once in threads (SentencePiece releases the GIL) and evaluates them in
  order; sizes trained past the stopping point are the price of that speculation.
- ALP from one batched `encode` and a `bincount` instead of a Python loop over tokens.
- Models stay in memory (no files); the corpus is read and validated once.
- An infeasible size is detected by a failed training that costs a fraction of a full one, the
  largest feasible size is remembered, and the previous model is kept rather than retrained.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from crossling.errors import ConfigError, DataFormatError
from crossling.vocab.alp import average_log_probability, reference_alp
from crossling.vocab.trainer import (
    DEFAULT_TRAIN_THREADS,
    CorpusTooSmallError,
    VocabSizeTooHigh,
    check_spm_options,
    train_unigram,
    trainer_args,
)

SPM_MODEL_NAME = "sentencepiece.model"


@dataclass(frozen=True)
class SearchStep:
    """One evaluated size: ALP, its change from the previous size (None first), wall seconds."""

    size: int
    alp: float
    delta: float | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VocabSearchResult:
    """Outcome of `search_vocab_size`.

    chosen_size: SentencePiece vocabulary size chosen (pieces incl. <unk> <s> </s>; the Hugging Face
    tokenizer built from it has two more entries, <pad> and <mask>).
    trace: every evaluated size in order. stop_reason: "converged" (|ΔALP| < ε), "capped" (the
    next size was too large for the corpus), "max_size" (grid exhausted) or "fixed" (no search).
    model_path: the chosen model's `sentencepiece.model` (None unless an out_dir was given);
    model_proto: its bytes (`save_tokenizer` turns them into a Hugging Face tokenizer).
    """

    chosen_size: int
    trace: list[SearchStep]
    stop_reason: str
    model_path: Path | None
    mode: str
    seconds: float
    n_sentences: int
    params: dict[str, Any]
    max_feasible_size: int | None = None
    model_proto: bytes = field(default=b"", repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the model bytes)."""
        return {
            "chosen_size": self.chosen_size,
            "stop_reason": self.stop_reason,
            "max_feasible_size": self.max_feasible_size,
            "mode": self.mode,
            "seconds": round(self.seconds, 3),
            "n_sentences": self.n_sentences,
            "params": self.params,
            "trace": [s.to_dict() for s in self.trace],
            "model_path": str(self.model_path) if self.model_path else None,
        }


# --- corpus --------------------------------------------------------------------------------------


@dataclass
class PreparedCorpus:
    """The corpus as both modes see it: stripped, non-empty sentences, also written to `path`."""

    path: Path
    lines: list[str]
    source: str


def _clean(text: str) -> str:
    # A lone \r would be a line break for Python's text-mode readlines (the reference's reader)
    # but not for SentencePiece's; as a space, both see the same sentences.
    return text.replace("\r", " ").strip()


def prepare_corpus(
    corpus: str | os.PathLike[str] | Iterable[str],
    workdir: str | os.PathLike[str],
    corpus_format: str = "text",
) -> PreparedCorpus:
    """Read and validate `corpus` (a file path or sentences) into `workdir`/corpus.txt.

    A file is read with `crossling.data` (`corpus_format`: "text" = one sentence per line, or any
    format of `crossling.data.FORMATS` whose records have "text", e.g. "bible", "jsonl", "auto"):
    missing files, non-UTF-8 bytes (file:line) and files with no sentence raise DataFormatError.
    Strings given directly that contain newlines count as several sentences.
    """
    if isinstance(corpus, str | os.PathLike):
        from crossling import data

        source = str(corpus)
        records = data.read_text(corpus) if corpus_format == "text" else data.read(corpus, corpus_format)
        lines = []
        for record in records:
            if "text" not in record:
                raise ConfigError(f"format {corpus_format!r} has no 'text' field; use a monolingual format")
            if text := _clean(record["text"]):
                lines.append(text)
    else:
        source = "<sentences>"
        lines = []
        for i, item in enumerate(corpus):
            if not isinstance(item, str):
                raise ConfigError(f"corpus item {i} is {type(item).__name__}, expected str")
            lines.extend(t for part in item.split("\n") if (t := _clean(part)))
    if not lines:
        raise DataFormatError(source, None, "the corpus has no non-empty line")
    path = Path(workdir) / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return PreparedCorpus(path=path, lines=lines, source=source)


# --- search --------------------------------------------------------------------------------------


def size_grid(start: int, step: int, max_size: int) -> list[int]:
    """start, start+step, ... up to and including max_size (checks the parameters)."""
    for name, value in (("start", start), ("step", step), ("max_size", max_size)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
    if step <= 0:
        raise ConfigError(f"step must be positive, got {step}")
    if start <= 3:
        raise ConfigError(f"start must be larger than 3 (<unk> <s> </s> are pieces too), got {start}")
    if start > max_size:
        raise ConfigError(f"start ({start}) is larger than max_size ({max_size})")
    return list(range(start, max_size + 1, step))


def gain_below(delta: float, epsilon: float, *, absolute: bool = True) -> bool:
    """The stopping test of Algorithm 1 for ΔALP = ALP(v) − ALP(v−step).

    absolute=True is the reference code's |ΔALP| < ε; absolute=False the paper's ΔALP < ε, which
    also stops when ALP drops. The two agree whenever ALP grows with the vocabulary.
    """
    return (abs(delta) if absolute else delta) < epsilon


@dataclass
class _Outcome:
    size: int
    seconds: float
    alp: float | None = None
    proto: bytes = b""
    too_high: VocabSizeTooHigh | None = None


def _default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def search_vocab_size(
    corpus: str | os.PathLike[str] | Iterable[str],
    *,
    start: int = 7000,
    step: int = 1000,
    max_size: int = 60000,
    epsilon: float = 5.0,
    absolute: bool = True,
    seed: int = 0,
    character_coverage: float = 1.0,
    workers: int | None = None,
    train_threads: int = DEFAULT_TRAIN_THREADS,
    spm_options: Mapping[str, Any] | None = None,
    naive: bool = False,
    out_dir: str | os.PathLike[str] | None = None,
    corpus_format: str = "text",
    progress: bool = True,
) -> VocabSearchResult:
    """Search the SentencePiece vocabulary size of `corpus` by ALP gain (UniBridge Algorithm 1).

    corpus: a text file (one sentence per line; see `prepare_corpus`) or an iterable of sentences.
    start, step, max_size, epsilon: the grid and threshold (paper: 7000, 1000, 60000, 5.0).
    absolute: stop on |ΔALP| < ε (reference code) rather than ΔALP < ε (paper's text).
    seed: the seed of the sentence sample when spm_options has input_sentence_size (drawn by crossling:
        SentencePiece's own sample differs from process to process whatever its seed).
    character_coverage: SentencePiece's (1.0 as in the reference for non-CJK languages).
    workers: sizes trained at once in fast mode (default min(2, CPUs)); ignored when naive.
    train_threads: SentencePiece trainer threads; part of the result, not only of the speed.
    spm_options: extra SentencePiece trainer options (see `trainer.ALLOWED_SPM_OPTIONS`).
    naive: run the reference procedure instead of the fast one (same result, slower).
    out_dir: where the chosen `sentencepiece.model` is written (nothing is written if None; the
    model's bytes are in the result either way).

    The rule, its deviations from the reference and what fast mode changes are in this module's
    docstring. Raises ConfigError / DataFormatError / CorpusTooSmallError on bad input.
    """
    grid = size_grid(start, step, max_size)
    if not (isinstance(epsilon, int | float) and math.isfinite(epsilon) and epsilon >= 0):
        raise ConfigError(f"epsilon must be a finite number >= 0, got {epsilon!r}")
    if not 0 < character_coverage <= 1:
        raise ConfigError(f"character_coverage must be in (0, 1], got {character_coverage}")
    if train_threads < 1:
        raise ConfigError(f"train_threads must be >= 1, got {train_threads}")
    workers = _default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    spm_options = check_spm_options(spm_options)

    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="crossling-vocab-") as tmp:
        prepared = prepare_corpus(corpus, tmp, corpus_format)
        train = _trainer(prepared, seed, character_coverage, train_threads, spm_options)

        def is_small(delta: float) -> bool:
            return gain_below(delta, epsilon, absolute=absolute)

        bar = _progress(len(grid), progress)
        try:
            if naive:
                outcome = _search_naive(prepared, grid, step, train, is_small, Path(tmp), bar)
            else:
                outcome = _search_fast(prepared, grid, train, is_small, workers, bar)
        finally:
            bar.close()
    chosen, proto, trace, stop_reason, max_feasible = outcome
    model_path = _write_model(proto, out_dir)
    params = {
        "start": start,
        "step": step,
        "max_size": max_size,
        "epsilon": epsilon,
        "criterion": "|ALP(v) - ALP(v-step)| < epsilon" if absolute else "ALP(v) - ALP(v-step) < epsilon",
        "seed": seed,
        "workers": 1 if naive else workers,
        "sentencepiece": _spm_version(),
        "trainer": trainer_args(
            chosen, character_coverage=character_coverage, train_threads=train_threads, options=spm_options
        ),
    }
    del params["trainer"]["vocab_size"]
    return VocabSearchResult(
        chosen_size=chosen,
        trace=trace,
        stop_reason=stop_reason,
        model_path=model_path,
        mode="naive" if naive else "fast",
        seconds=time.perf_counter() - t_start,
        n_sentences=len(prepared.lines),
        params=params,
        max_feasible_size=max_feasible,
        model_proto=proto,
    )


def _trainer(prepared: PreparedCorpus, seed, character_coverage, train_threads, spm_options):
    def train(size: int) -> bytes:
        return train_unigram(
            prepared.path,
            size,
            character_coverage=character_coverage,
            train_threads=train_threads,
            seed=seed,
            options=spm_options,
            source=prepared.source,
        )

    return train


def _too_small(prepared: PreparedCorpus, err: VocabSizeTooHigh) -> CorpusTooSmallError:
    hint = f"start the search at or below {err.max_size} (--start) or use a larger corpus"
    return CorpusTooSmallError(prepared.source, err.requested, err.max_size, hint)


def _search_naive(prepared, grid, step, train, is_small, workdir: Path, bar):
    """The reference loop, step for step (see the module docstring)."""
    import sentencepiece as spm

    model_file = workdir / "sentencepiece.unigram.model"
    trace: list[SearchStep] = []
    previous_alp = None
    stop_reason, max_feasible = "max_size", None
    size = grid[0]
    for size in grid:
        t0 = time.perf_counter()
        capped = False
        try:
            model_file.write_bytes(train(size))
        except VocabSizeTooHigh as err:
            if size == grid[0]:
                raise _too_small(prepared, err) from None
            # The reference retrains the previous size from scratch and recomputes its ALP.
            capped, max_feasible = True, err.max_size
            size -= step
            model_file.write_bytes(train(size))
        sp = spm.SentencePieceProcessor(model_file=str(model_file))
        with open(prepared.path, encoding="utf-8") as f:
            alp = reference_alp(f.readlines(), sp.encode_as_ids, sp.get_piece_size())
        if capped:
            stop_reason = "capped"
            break
        delta = None if previous_alp is None else alp - previous_alp
        trace.append(SearchStep(size, alp, delta, time.perf_counter() - t0))
        _tick(bar, trace[-1])
        if delta is not None and is_small(delta):
            stop_reason = "converged"
            break
        previous_alp = alp
    return size, model_file.read_bytes(), trace, stop_reason, max_feasible


def _search_fast(prepared, grid, train, is_small, workers: int, bar):
    """Same decisions as `_search_naive`; `workers` consecutive sizes trained at once."""
    import sentencepiece as spm

    encode_threads = max(1, (os.cpu_count() or 1) // workers)

    def evaluate(size: int) -> _Outcome:
        t0 = time.perf_counter()
        try:
            proto = train(size)
        except VocabSizeTooHigh as err:
            return _Outcome(size, time.perf_counter() - t0, too_high=err)
        sp = spm.SentencePieceProcessor(model_proto=proto)
        ids = sp.encode(prepared.lines, num_threads=encode_threads)
        alp = average_log_probability(ids, sp.get_piece_size())
        return _Outcome(size, time.perf_counter() - t0, alp=alp, proto=proto)

    trace: list[SearchStep] = []
    best: _Outcome | None = None
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crossling-vocab") as pool:
        for i in range(0, len(grid), workers):
            # All futures of a batch finish before we return: no training outlives the search.
            outcomes = [f.result() for f in [pool.submit(evaluate, s) for s in grid[i : i + workers]]]
            for out in outcomes:
                if out.too_high is not None:
                    if best is None:
                        raise _too_small(prepared, out.too_high)
                    return best.size, best.proto, trace, "capped", out.too_high.max_size
                delta = None if best is None else out.alp - best.alp
                trace.append(SearchStep(out.size, out.alp, delta, out.seconds))
                _tick(bar, trace[-1])
                best = out
                if delta is not None and is_small(delta):
                    return best.size, best.proto, trace, "converged", None
    return best.size, best.proto, trace, "max_size", None


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="vocab search", unit="size", disable=not enabled, leave=False)


def _tick(bar, step: SearchStep) -> None:
    postfix = {"size": step.size, "alp": f"{step.alp:.2f}"}
    if step.delta is not None:
        postfix["delta"] = f"{step.delta:+.2f}"
    bar.set_postfix(postfix, refresh=False)
    bar.update(1)


def _spm_version() -> str:
    import sentencepiece as spm

    return spm.__version__


def _write_model(proto: bytes, out_dir: str | os.PathLike[str] | None) -> Path | None:
    if out_dir is None:
        return None
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / SPM_MODEL_NAME
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(proto)
    os.replace(tmp, path)
    return path


def train_fixed_size(
    corpus: str | os.PathLike[str] | Iterable[str],
    vocab_size: int,
    *,
    seed: int = 0,
    character_coverage: float = 1.0,
    train_threads: int = DEFAULT_TRAIN_THREADS,
    spm_options: Mapping[str, Any] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    corpus_format: str = "text",
) -> VocabSearchResult:
    """No search: train at `vocab_size` and report its ALP, in the same result type as a search."""
    import sentencepiece as spm

    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size <= 3:
        raise ConfigError(f"vocab_size must be an integer larger than 3, got {vocab_size!r}")
    if not 0 < character_coverage <= 1:
        raise ConfigError(f"character_coverage must be in (0, 1], got {character_coverage}")
    spm_options = check_spm_options(spm_options)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="crossling-vocab-") as tmp:
        prepared = prepare_corpus(corpus, tmp, corpus_format)
        train = _trainer(prepared, seed, character_coverage, train_threads, spm_options)
        try:
            proto = train(vocab_size)
        except VocabSizeTooHigh as err:
            hint = f"use a vocabulary size of at most {err.max_size} or a larger corpus"
            raise CorpusTooSmallError(prepared.source, vocab_size, err.max_size, hint) from None
        sp = spm.SentencePieceProcessor(model_proto=proto)
        alp = average_log_probability(sp.encode(prepared.lines), sp.get_piece_size())
    seconds = time.perf_counter() - t0
    params = {
        "seed": seed,
        "sentencepiece": _spm_version(),
        "trainer": trainer_args(
            vocab_size,
            character_coverage=character_coverage,
            train_threads=train_threads,
            options=spm_options,
        ),
    }
    return VocabSearchResult(
        chosen_size=vocab_size,
        trace=[SearchStep(vocab_size, alp, None, seconds)],
        stop_reason="fixed",
        model_path=_write_model(proto, out_dir),
        mode="fixed",
        seconds=seconds,
        n_sentences=len(prepared.lines),
        params=params,
        model_proto=proto,
    )
