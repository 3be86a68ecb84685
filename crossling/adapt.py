"""`crossling adapt`: corpus → vocabulary search → embedding init → language adapter → LanguagePack.

Every stage writes its result into a work directory (`OUT.work/` by default) and is reused when the
run is repeated with `resume=True`, so a crash costs at most the stage in flight (training itself
resumes from its last checkpoint). The pack directory appears only at the end, atomically.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossling.config import LanguageAdapterConfig, TrainingConfig, VocabSearchConfig
from crossling.errors import CrosslingError

logger = logging.getLogger(__name__)

# ISO 639-3 -> Wikipedia edition for languages whose codes differ (the rest are tried as given).
_WIKI_CODES = {
    "khm": "km",
    "amh": "am",
    "tam": "ta",
    "tat": "tt",
    "tgl": "tl",
    "nya": "ny",
    "swa": "sw",
    "hau": "ha",
    "ibo": "ig",
    "yor": "yo",
    "kin": "rw",
    "lug": "lg",
    "wol": "wo",
    "grn": "gn",
    "gn": "gn",
    "nah": "nah",
    "quy": "qu",
    "aym": "ay",
    "san": "sa",
    "snd": "sd",
    "eng": "en",
    "spa": "es",
    "ara": "ar",
    "rus": "ru",
    "zho": "zh",
    "jpn": "ja",
    "fra": "fr",
    "deu": "de",
    "hin": "hi",
}


@dataclass
class AdaptOptions:
    """Everything `adapt` needs beyond language, base and output; the CLI maps flags onto it."""

    corpus: Path | None = None
    vocab: str = "new"  # "new": search/train a vocabulary; "base": keep the base one (MAD-X source packs)
    tokenizer: Path | None = None  # skip the vocabulary search
    embeddings: Path | None = None  # skip initialisation (an `crossling init` output dir or .safetensors)
    init_method: str = "unibridge"
    alignment: str = "procrustes"
    vocab_search: VocabSearchConfig = field(default_factory=VocabSearchConfig)
    adapter: LanguageAdapterConfig = field(default_factory=LanguageAdapterConfig)
    training: TrainingConfig = field(default_factory=lambda: TrainingConfig.load("cpu"))
    work_dir: Path | None = None
    resume: bool = False
    clean: bool = True
    eval_lines: int = 500  # held out from the corpus for the perplexity report
    max_corpus_lines: int | None = None
    fasttext_dim: int = 300
    fasttext_epochs: int = 3
    progress: bool = True


def load_corpus(language: str, corpus: Path | None) -> tuple[list[str], str]:
    """Lines of the target-language corpus and a description of where they came from."""
    from crossling.data import read_sentences

    if corpus is not None:
        # any file with running text: plain lines, JSON lines, a Bible verse TSV, a treebank, NER data
        return list(read_sentences(corpus)), str(corpus)
    code = _WIKI_CODES.get(language, language)
    try:
        import datasets

        ds = datasets.load_dataset("wikimedia/wikipedia", f"20231101.{code}", split="train")
    except Exception as err:  # offline, unknown edition, or no such dataset: all end the same way
        raise CrosslingError(
            f"no --corpus given and Wikipedia ({code}) could not be loaded ({type(err).__name__}); "
            "pass --corpus FILE with one sentence or paragraph per line (UTF-8), "
            "or a .jsonl file with a 'text' field"
        ) from None
    lines = [line for article in ds["text"] for line in article.split("\n") if line.strip()]
    return lines, f"wikimedia/wikipedia 20231101.{code}"


def _prepare_corpus(
    language: str, options: AdaptOptions, work: Path, reuse: bool
) -> tuple[list[str], list[str], dict]:
    """Clean, cap and split the corpus into (train, held-out); cached as work/corpus.txt."""
    from crossling.data.cleaning import CleaningReport, clean_lines

    cached, report_file = work / "corpus.txt", work / "corpus.json"
    if reuse and cached.is_file() and report_file.is_file():
        lines = cached.read_text(encoding="utf-8").splitlines()
        report = json.loads(report_file.read_text(encoding="utf-8"))
    else:
        raw, source = load_corpus(language, options.corpus)
        cleaning = CleaningReport()
        lines = (
            list(clean_lines(raw, report=cleaning))
            if options.clean
            else [r.strip() for r in raw if r.strip()]
        )
        if options.max_corpus_lines is not None:
            lines = lines[: options.max_corpus_lines]
        report = {
            "source": source,
            "lines": len(lines),
            "cleaning": cleaning.as_dict() if options.clean else None,
        }
        _write_text(cached, "\n".join(lines) + "\n")
        _write_text(report_file, json.dumps(report, indent=2))
    if len(lines) < 2:
        raise CrosslingError(
            f"the corpus has {len(lines)} usable line(s) after cleaning; adaptation needs text"
        )
    # a fixed, seeded held-out sample, so perplexities of different runs are comparable
    n_eval = min(options.eval_lines, len(lines) // 10)
    order = list(range(len(lines)))
    random.Random(options.training.seed).shuffle(order)
    held = set(order[:n_eval])
    train = [line for i, line in enumerate(lines) if i not in held]
    evaluation = [lines[i] for i in sorted(held)]
    report = {**report, "train_lines": len(train), "eval_lines": len(evaluation)}
    return train, evaluation, report


def _write_text(path: Path, text: str) -> None:
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def adapt(language: str, base: str | Path, out: str | Path, options: AdaptOptions | None = None) -> Any:
    """Build a LanguagePack for `language` on `base` in directory `out`; returns the LanguagePack."""
    from transformers import set_seed

    from crossling.language import build_adaptable_model, save_language_pack, train_language_adapter

    options = options or AdaptOptions()
    if options.vocab == "base" and options.adapter.train_embeddings:
        # A pack that keeps the base vocabulary does not store embeddings (MAD-X: the base stays
        # frozen); trained base embeddings would be lost on reload, so they are not trained.
        options = dataclasses.replace(options, adapter=options.adapter.replace(train_embeddings=False))
    from crossling.artifacts import LanguagePack, check_output_directory

    out = check_output_directory(out, LanguagePack.FORMAT)  # before hours of training, not after
    work = Path(options.work_dir) if options.work_dir else out.with_name(out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    reports: dict[str, Any] = {"options": _options_dict(options), "base": str(base)}
    timings: dict[str, float] = {}

    # Under torchrun every process runs this function: the main process prepares the stages first,
    # the others then read its cached results, and only the main process writes the pack.
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    reuse = options.resume or not state.is_main_process
    tokenizer = embeddings = None
    with state.main_process_first():
        started = time.perf_counter()
        train, evaluation, reports["corpus"] = _prepare_corpus(language, options, work, reuse)
        timings["corpus"] = time.perf_counter() - started
        if options.vocab == "new":
            started = time.perf_counter()
            tokenizer, reports["vocab_search"] = _vocabulary(train, options, work, reuse)
            timings["vocab"] = time.perf_counter() - started
            started = time.perf_counter()
            embeddings, reports["init"] = _embeddings(base, tokenizer, train, options, work, reuse)
            timings["init"] = time.perf_counter() - started
        elif options.vocab != "base":
            raise CrosslingError(f"vocab must be 'new' or 'base', not {options.vocab!r}")

    started = time.perf_counter()
    # The fresh adapter (and a fresh MLM head) are drawn from the global RNG; seed it here, or the
    # pack would depend on what ran before in this process (a recipe runs many stages in one).
    set_seed(options.training.seed)
    adaptable = build_adaptable_model(
        base, language, options.adapter, tokenizer=tokenizer, embeddings=embeddings
    )
    reports["training"] = train_language_adapter(
        adaptable,
        train,
        options.adapter,
        options.training,
        work,
        resume=options.resume,
        eval_lines=evaluation,
        progress=options.progress and state.is_main_process,
    )
    timings["training"] = time.perf_counter() - started
    state = PartialState(cpu=not torch.cuda.is_available())  # Trainer re-created the shared state
    reports["seconds"] = {k: round(v, 2) for k, v in timings.items()}
    reports["processes"] = state.num_processes
    pack = None
    if state.is_main_process:
        pack = save_language_pack(
            adaptable, out, language=language, new_vocabulary=options.vocab == "new", reports=reports
        )
    state.wait_for_everyone()
    if pack is None:
        from crossling.artifacts import LanguagePack

        pack = LanguagePack.from_pretrained(out)
    return pack


def _options_dict(options: AdaptOptions) -> dict[str, Any]:
    return {
        "vocab": options.vocab,
        "tokenizer": str(options.tokenizer) if options.tokenizer else None,
        "embeddings": str(options.embeddings) if options.embeddings else None,
        "init_method": options.init_method,
        "alignment": options.alignment,
        "vocab_search": options.vocab_search.to_dict(),
        "adapter": options.adapter.to_dict(),
        "training": options.training.to_dict(),
        "clean": options.clean,
    }


def _vocabulary(train: list[str], options: AdaptOptions, work: Path, reuse: bool) -> tuple[Any, dict]:
    """Stage 1: the given tokenizer, or an ALP search (or `fixed_size`) on the training lines."""
    from crossling.embeddings import load_tokenizer
    from crossling.vocab import save_vocabulary, search_vocab_size, train_fixed_size

    if options.tokenizer is not None:
        tokenizer = load_tokenizer(options.tokenizer, "--tokenizer")
        return tokenizer, {"tokenizer": str(options.tokenizer), "tokenizer_size": len(tokenizer)}
    directory = work / "tokenizer"
    report_file = directory / "vocab_search.json"
    if not (reuse and report_file.is_file()):
        config = options.vocab_search
        common = {"seed": config.seed, "character_coverage": config.character_coverage}
        if config.fixed_size is not None:
            result = train_fixed_size(train, config.fixed_size, **common)
        else:
            result = search_vocab_size(
                train,
                start=config.start,
                step=config.step,
                max_size=config.max_size,
                epsilon=config.epsilon,
                progress=options.progress,
                **common,
            )
        save_vocabulary(result, directory, corpus="the cleaned training lines", overwrite=True)
        logger.info("vocabulary: %d pieces (%s)", result.chosen_size, result.stop_reason)
    report = json.loads(report_file.read_text(encoding="utf-8"))
    return load_tokenizer(directory, "the searched tokenizer"), report


def _embeddings(
    base: str | Path, tokenizer: Any, train: list[str], options: AdaptOptions, work: Path, reuse: bool
) -> tuple[Any, dict]:
    """Stage 2: the given `crossling init` output, or `crossling.embeddings.initialize` on `train`."""
    from crossling.embeddings import FastTextConfig, initialize, load_initialization, save_initialization

    if options.embeddings is not None:
        embeddings, report = load_initialization(options.embeddings)
        source = str(options.embeddings)
    else:
        directory = work / "init"
        if reuse and (directory / "init_report.json").is_file():
            embeddings, report = load_initialization(directory)
        else:
            fasttext = FastTextConfig.load(None, dim=options.fasttext_dim, epochs=options.fasttext_epochs)
            embeddings, report = initialize(
                base,
                tokenizer,
                train,
                method=options.init_method,
                alignment=options.alignment,
                seed=options.training.seed,
                fasttext=fasttext,
                progress=options.progress,
            )
            save_initialization(directory, embeddings, report)
            logger.info("embeddings: %s", report.summary(one_line=True))
        source = "initialize"
    if embeddings.shape[0] != len(tokenizer):
        raise CrosslingError(
            f"the embeddings have {embeddings.shape[0]} rows but the tokenizer has {len(tokenizer)} "
            "entries: pass the tokenizer the embeddings were initialised for (--tokenizer)"
        )
    return embeddings, {"source": source, **report.to_dict()}
