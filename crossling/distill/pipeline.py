"""`distill`: corpus -> teacher -> student -> training -> a Hugging Face model directory.

The output directory is an ordinary Hugging Face model (`config.json`, `model.safetensors`, the
teacher's tokenizer files) that `AutoModel`, `AutoModelForMaskedLM` and `AutoTokenizer` load and that
every crossling command accepts as `--base`, plus `crossling.json` describing how it was made. It is
written atomically by the main process only; under `torchrun` the other processes train and wait.

The work directory (default OUT.work) holds the cleaned corpus, the Trainer's checkpoints and `run.json`,
the signature of the run (teacher fingerprint, corpus files, config, training settings, processes).
`resume=True` continues from the last checkpoint only under the same signature; a fresh run refuses a
work directory with checkpoints of an unfinished one. Once the student is written the work directory
is removed.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from crossling.config import TrainingConfig, without_new_defaults
from crossling.distill.config import DistillConfig, distill_training_config
from crossling.distill.corpus import (
    CorpusSpec,
    LanguageCorpus,
    balanced_sample,
    normalise_corpus,
    prepare_language,
    read_language_lines,
    sampling_probabilities,
)
from crossling.errors import ArtifactError, CrosslingError

logger = logging.getLogger(__name__)

FORMAT = "crossling.DistilledStudent"
FORMAT_VERSION = 1


@dataclass
class DistilledStudent:
    """A distilled student directory and its `crossling.json` metadata."""

    path: Path
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str]) -> DistilledStudent:
        from crossling.artifacts import METADATA_FILE

        path = Path(path).absolute()
        meta_file = path / METADATA_FILE
        if not meta_file.is_file():
            raise ArtifactError(f"{path} has no {METADATA_FILE}: not a crossling distilled student")
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise ArtifactError(f"{path} holds a {meta.get('format', 'unknown artifact')}, not a {FORMAT}")
        return cls(path=path, metadata=meta)

    def load(self) -> tuple[Any, Any]:
        """(AutoModelForMaskedLM, AutoTokenizer) of the student."""
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        return AutoModelForMaskedLM.from_pretrained(self.path), AutoTokenizer.from_pretrained(self.path)


def _prepare_corpus(
    paths: dict[str, list[Path]], config: DistillConfig, seed: int, work: Path, reuse: bool
) -> dict[str, LanguageCorpus]:
    """Clean and split every language; cached in work/corpus/ so --resume and other ranks reuse it.

    `reuse` is only true when the cache is known to belong to this run: resuming after the run
    signature matched (see `_guard_work_dir`), or a non-main rank reading what the main one just wrote.
    """
    from crossling.artifacts import write_json_atomic

    cache = work / "corpus"
    report_file = cache / "corpus.json"
    if reuse and report_file.is_file():
        reports = json.loads(report_file.read_text(encoding="utf-8"))
        if sorted(reports) == sorted(paths):
            return {
                lang: LanguageCorpus(
                    lang,
                    _read_lines(cache / f"{lang}.train.txt"),
                    _read_lines(cache / f"{lang}.eval.txt"),
                    reports[lang],
                )
                for lang in sorted(paths)
            }
    corpora = {}
    for lang in sorted(paths):
        corpora[lang] = prepare_language(
            lang,
            read_language_lines(paths[lang]),
            clean=config.clean,
            max_lines=config.max_lines_per_language,
            eval_lines=config.eval_lines,
            seed=seed,
            sources=[str(p) for p in paths[lang]],
        )
    cache.mkdir(parents=True, exist_ok=True)
    for lang, corpus in corpora.items():
        _write_lines(cache / f"{lang}.train.txt", corpus.train)
        _write_lines(cache / f"{lang}.eval.txt", corpus.held_out)
    write_json_atomic(report_file, {lang: c.report for lang, c in corpora.items()})
    return corpora


RUN_FILE = "run.json"
# training settings that may change between an interruption and --resume without changing what is trained
_RESUMABLE_CHANGES = ("save_steps", "eval_steps")


def _run_signature(
    teacher: Any,
    paths: dict[str, list[Path]],
    config: DistillConfig,
    training: TrainingConfig,
    processes: int,
) -> dict[str, Any]:
    """Everything that decides what a run trains: --resume refuses to continue under another one."""
    return {
        "teacher": teacher.identity.fingerprint,
        "corpus": {
            lang: [
                {"path": str(p.absolute()), "bytes": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns}
                for p in files
            ]
            for lang, files in sorted(paths.items())
        },
        "config": config.to_dict(),
        "training": without_new_defaults(
            {k: v for k, v in training.to_dict().items() if k not in _RESUMABLE_CHANGES}
        ),
        "processes": processes,
    }


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            d
            for key in sorted(set(old) | set(new))
            for d in _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        ]
    return [] if old == new else [prefix.rstrip(".")]


def _guard_work_dir(work: Path, signature: dict[str, Any], resume: bool, is_main: bool) -> bool:
    """Check the work directory before training; returns whether a checkpoint will be resumed.

    A fresh run refuses a work directory that holds checkpoints of an unfinished run (rerunning the
    command without --resume would otherwise throw them away, or mix two runs' checkpoints); --resume
    refuses to continue a run whose teacher, corpus files, config or training settings changed.
    """
    from crossling.artifacts import write_json_atomic
    from crossling.distill.train import checkpoint_dir
    from crossling.training_utils import last_checkpoint

    last = last_checkpoint(checkpoint_dir(work))
    if last is not None and not resume:
        raise CrosslingError(
            f"{work} holds {Path(last).name} of an earlier, unfinished run: add --resume to continue it, "
            f"or delete {work} to start again"
        )
    run_file = work / RUN_FILE
    if last is not None:
        recorded = json.loads(run_file.read_text(encoding="utf-8")) if run_file.is_file() else None
        changed = _differences(recorded, signature) if recorded is not None else ["(no record of the run)"]
        if changed:
            shown = ", ".join(changed[:6]) + (f" and {len(changed) - 6} more" if len(changed) > 6 else "")
            raise CrosslingError(
                f"--resume: the run in {work} was made with other settings ({shown} differ); rerun with "
                f"the original options, or delete {work} to start again"
            )
        return True
    if is_main:
        write_json_atomic(run_file, signature)
    return False


def _clean_work_dir(work: Path) -> None:
    """After a finished run: drop what only --resume needed, and the directory if nothing else is left."""
    import shutil

    from crossling.distill.train import checkpoint_dir

    shutil.rmtree(checkpoint_dir(work), ignore_errors=True)
    shutil.rmtree(work / "corpus", ignore_errors=True)
    (work / RUN_FILE).unlink(missing_ok=True)
    try:
        work.rmdir()
    except OSError:
        pass  # the user's own files are there too


def _read_lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return text.split("\n")[:-1] if text else []


def _write_lines(path: Path, lines: list[str]) -> None:
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("".join(line + "\n" for line in lines))
    os.replace(tmp, path)


def _resolve_kd_mode(config: DistillConfig, has_mlm_head: bool, teacher: str) -> str:
    if config.kd_mode == "auto":
        return "logits" if has_mlm_head else "hidden"
    if config.kd_mode == "logits" and not has_mlm_head:
        raise CrosslingError(
            f"teacher {teacher} has no MLM head, so there are no teacher logits to distil: use kd_mode "
            "'hidden' (or 'auto')"
        )
    return config.kd_mode


def distill(
    teacher: str | os.PathLike[str],
    corpus: CorpusSpec,
    out: str | os.PathLike[str],
    *,
    config: DistillConfig | str | dict[str, Any] | None = None,
    training: TrainingConfig | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: bool = True,
    callbacks: list[Any] | None = None,
) -> DistilledStudent:
    """Distil a compact multilingual student from `teacher` on `corpus` into directory `out`.

    teacher: a Hugging Face name or directory (any BERT/RoBERTa-family encoder, with or without an
        MLM head). corpus: {language: file or [files]}; text, JSON lines, Bible TSV, UDHR, NLI/PAWS-X
        TSV (both sentences) or CoNLL/XTREME (tokens joined) are read. config: a DistillConfig, a preset
        name ("unibert", "no-adv", "mlm-only"), a dict or a YAML path. training: defaults to
        `distill_training_config("cpu")`. Checkpoints go to `work_dir` (default OUT.work); with
        `resume=True` training continues from the last one. Returns the written student.
    """
    from accelerate import PartialState

    from crossling.distill.model import DistillationModel
    from crossling.distill.student import build_student, count_parameters, load_teacher
    from crossling.distill.train import build_dataset, evaluate_distillation, train_distillation

    config = DistillConfig.load(config)
    training = training or distill_training_config("cpu")
    paths = normalise_corpus(corpus)
    languages = sorted(paths)
    if len(languages) < 2 and config.adversarial_weight > 0:
        raise CrosslingError(
            f"the adversarial language discriminator needs at least two languages, got only "
            f"{', '.join(languages)}; add corpora for more languages or set the adversarial weight to 0 "
            "(--adversarial-weight 0) to distil a single-language student with MLM + KD"
        )
    from crossling.artifacts import check_output_directory

    out = check_output_directory(out, FORMAT, "distilled student")  # before any training
    work = Path(work_dir) if work_dir else out.with_name(out.name + ".work")  # created by the guard

    state = PartialState(cpu=not torch.cuda.is_available())
    loaded = load_teacher(teacher)
    kd_mode = _resolve_kd_mode(config, loaded.has_mlm_head, loaded.source)
    signature = _run_signature(loaded, paths, config, training, state.num_processes)
    resuming = _guard_work_dir(work, signature, resume, state.is_main_process)
    if resume and not resuming:
        logger.warning("--resume: no checkpoint in %s, starting from scratch", work)
    with state.main_process_first():
        corpora = _prepare_corpus(
            paths, config, training.seed, work, reuse=resuming or not state.is_main_process
        )

    student, basis, student_report = build_student(
        loaded,
        config.student,
        max_positions=config.max_positions,
        embedding_init=config.embedding_init,
        tie_decoder=config.tie_decoder,
        seed=training.seed,
    )
    max_length = min(training.max_length, student.config.max_position_embeddings)

    tokenizer = loaded.tokenizer
    encoded: dict[str, list[list[int]]] = {}
    for lang in languages:
        ids = tokenizer(corpora[lang].train, truncation=True, max_length=max_length)["input_ids"]
        encoded[lang] = [x for x in ids if len(x) > 2]  # more than the special tokens
        if not encoded[lang]:
            raise CrosslingError(f"no training sentence of {lang!r} has a token besides the special ones")
    counts = {lang: len(encoded[lang]) for lang in languages}
    per_step = training.batch_size * training.gradient_accumulation_steps * state.num_processes
    total = max(sum(counts.values()), training.max_steps * per_step if training.max_steps > 0 else 0)
    draws = balanced_sample(counts, config.sampling_alpha, total, seed=training.seed)
    dataset = build_dataset(encoded, languages, draws)
    probabilities = sampling_probabilities(counts, config.sampling_alpha)
    drawn = {lang: 0 for lang in languages}
    for lang, _ in draws:
        drawn[lang] += 1

    torch.manual_seed(training.seed + 1)  # discriminator and projection: their own seeded init
    model = DistillationModel(
        student, loaded.model, config, languages=languages, kd_mode=kd_mode, projection_init=basis
    )
    if kd_mode == "hidden":
        student_report["teacher_calibration"] = model.calibrate(
            _calibration_batches(dataset, tokenizer, config)
        )
    summary = train_distillation(
        model,
        tokenizer,
        dataset,
        training,
        work,
        mlm_probability=config.mlm_probability,
        discriminator_lr_multiplier=config.discriminator_lr_multiplier,
        resume=resuming,
        progress=progress and state.is_main_process,
        callbacks=callbacks,
    )
    state = PartialState(cpu=not torch.cuda.is_available())  # Trainer re-created the shared state
    result = None
    if state.is_main_process:
        held_out = {lang: corpora[lang].held_out for lang in languages}
        evaluation = (
            evaluate_distillation(
                model, tokenizer, held_out, mlm_probability=config.mlm_probability, max_length=max_length
            )
            if any(held_out.values())
            else None
        )
        metadata = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "teacher": {**loaded.identity.to_dict(), "mlm_head": loaded.has_mlm_head},
            "student": {
                "size": config.size_name,
                **config.student.to_dict(),
                "architecture": "BertForMaskedLM",
                "vocabulary": "teacher's",
                "parameters": count_parameters(student),
                **student_report,
            },
            "objective": _objective(config, kd_mode, len(languages)),
            "config": config.to_dict(),
            "training": {**training.to_dict(), "processes": state.num_processes, **summary},
            "corpus": {
                lang: {
                    **corpora[lang].report,
                    "sentences_encoded": counts[lang],
                    "sampling_probability": round(probabilities[lang], 4),
                    "examples_drawn": drawn[lang],
                }
                for lang in languages
            },
            "languages": languages,
            "eval": evaluation,
        }
        result = save_student(student, tokenizer, out, metadata)
    state.wait_for_everyone()
    if state.is_main_process:
        _clean_work_dir(work)
    return result if result is not None else DistilledStudent.from_pretrained(out)


def _calibration_batches(
    dataset: Any, tokenizer: Any, config: DistillConfig, n: int = 256, batch_size: int = 32
) -> list[dict[str, torch.Tensor]]:
    """`n` examples spread evenly over the (language-grouped) dataset, masked as in training."""
    from crossling.distill.train import DistillCollator

    step = max(len(dataset) // n, 1)
    sample = [dataset[i] for i in range(0, len(dataset), step)][:n]
    collator = DistillCollator(tokenizer, config.mlm_probability, seed=0)
    return [collator(sample[i : i + batch_size]) for i in range(0, len(sample), batch_size)]


def _objective(config: DistillConfig, kd_mode: str, n_languages: int) -> dict[str, Any]:
    """A readable description of the loss, recorded in crossling.json."""
    adversarial = n_languages >= 2
    return {
        "encoder_loss": (
            f"{config.mlm_weight}*MLM"
            + (f" - {config.adversarial_weight}*L_adv" if adversarial else "")
            + f" + {config.kd_weight}*KD"
        ),
        "mlm": {"masking": config.mlm_probability, "label_smoothing": config.label_smoothing},
        "kd": {
            "mode": kd_mode,
            **(
                {"temperature": config.kd_temperature, "positions": "masked tokens"}
                if kd_mode == "logits"
                else {
                    "loss": "cosine distance through a learned projection (student -> teacher width)",
                    "targets": "teacher states centred on their corpus mean",
                    "token_weight": config.kd_token_weight,
                    "pooled_weight": round(1 - config.kd_token_weight, 4),
                }
            ),
        },
        "adversarial": (
            {
                "discriminator": "linear"
                if not config.discriminator_hidden
                else f"mlp({config.discriminator_hidden})",
                "input": "mean-pooled final student states",
                "learning_rate_multiplier": config.discriminator_lr_multiplier,
                "update": "loss reversal: encoder gets -lambda * grad L_adv, discriminator gets +grad L_adv "
                "(detached copies, one optimiser step)",
            }
            if adversarial
            else None
        ),
    }


def save_student(
    student: Any, tokenizer: Any, out: str | os.PathLike[str], metadata: dict[str, Any]
) -> DistilledStudent:
    """Write the student as a Hugging Face directory + crossling.json, atomically."""
    from crossling.artifacts import METADATA_FILE, atomic_directory, library_versions, write_json_atomic

    metadata = {
        **metadata,
        "versions": library_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    with atomic_directory(out) as tmp:
        student.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        metadata["size_on_disk_bytes"] = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
        write_json_atomic(tmp / METADATA_FILE, metadata)
    return DistilledStudent(path=Path(out).absolute(), metadata=metadata)
