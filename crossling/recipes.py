"""Reproducible recipes: a YAML file names a paper table; `run_recipe` builds it stage by stage.

A recipe names the task, the base model, the source and target languages, data paths relative to a
data root (``--data-root``, ``$CROSSLING_DATA``, or ``../shared/data`` beside the repository), every
stage's configuration and the rows of the table. Any value may depend on the budget::

    max_steps: {smoke: 8, cpu: 600, paper: 100000}

Stages (base model, distilled student, language packs, task adapters, Macular adapters, evaluations)
are cached under
``WORK/stages/KIND-KEY`` where KEY hashes the settings the stage uses, the contents of its data files
(for the base model, of every file in its directory, weights included, not its name or place), the
keys of the stages it reads and crossling's version (a new release may compute differently, so it
reruns). A stage is finished when its ``stage.json`` is complete (written atomically, last); a rerun
after a crash reuses every finished stage and continues an interrupted training run from its last
checkpoint. Changing one row's configuration re-runs only what it changes.

    from crossling.recipes import load_recipe, run_recipe
    recipe = load_recipe("recipes/unibridge_nli.yaml", budget="smoke")
    table = run_recipe(recipe, work="runs/unibridge_nli/smoke")
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from crossling.config import HARMONY_STRATEGIES, without_new_defaults
from crossling.errors import ConfigError

logger = logging.getLogger(__name__)

BUDGETS = ("smoke", "cpu", "paper")
REPO_ROOT = Path(__file__).resolve().parents[1]
RECIPES_DIR = REPO_ROOT / "recipes"
STAGE_FILE = "stage.json"
LOCK_FILE = "lock.json"  # flock-ed while a process runs the stage; holds {"pid", "host", "started"}
ATTEMPTS_FILE = "attempts.json"  # the stage's interrupted runs, so that its seconds count them too
TINY_BASES = ("tiny-xlmr", "tiny-bert")
BASE_ROW = "base"  # the alignment table's row of the base model before any task training
ALIGNMENT_MAX_LENGTH = 128  # tokens per sentence, the same for every model an alignment table compares

_TOP_KEYS = {
    "name": "short name (runs/NAME/BUDGET)",
    "title": "the table's title",
    "description": "what the recipe reproduces",
    "reference": "the paper and tables the rows follow",
    "task": "ner, pos, nli or paraphrase",
    "base": "base model: a directory, a name under the models root, or tiny-xlmr / tiny-bert",
    "sources": "source languages (task data)",
    "targets": "target languages (evaluation)",
    "data": "data paths relative to the data root, and data sizes",
    "training": "TrainingConfig of language_adapter, task_adapter and finetune stages (finetune: rows "
    "with method finetune; default: task_adapter's)",
    "defaults": "stage settings every row starts from",
    "rows": "the rows of the table",
    "notes": "lines printed under the table",
    "student": "a UniBERT-style student distilled from the base, for rows with model: student "
    "(size, preset, corpus {lang: path or paths}, corpus_lines, training)",
    "compare": "pairs of rows summarised under the table: [{label, each: ROW, all: ROW}] gives the "
    "relative improvement of 'all' over 'each' and a paired t-test across targets",
}
_STUDENT_KEYS = {
    "size": "xxsmall, xsmall or small",
    "preset": "DistillConfig preset (unibert, no-adv, mlm-only) or options",
    "corpus": "{lang: path or list of paths} of distillation text",
    "corpus_lines": "at most this many lines per language (null: all)",
    "training": "TrainingConfig of the distillation (preset name or options)",
}
_DATA_KEYS = {
    "task_train": "labelled source data, {lang} replaced by the source language",
    "task_dev": "labelled source dev data ({lang}); default: the examples after train_examples",
    "train_examples": "examples of task_train used for training (the first N; null: all)",
    "dev_examples": "dev examples (the best checkpoint is chosen on them)",
    "test": "labelled target data, {lang} replaced by the target language",
    "test_limit": "evaluate on the first N target examples (null: all)",
    "test_skip": "skip the first N target examples (e.g. translations of the training rows)",
    "source_corpus": "text of a source language ({lang}): a path or a list of paths (any format with "
    "running text: plain lines, Bible TSV, UDHR, or the text of a labelled file)",
    "target_corpus": "{target: path or list of paths} of text for target language adaptation",
    "corpus_lines": "use at most this many corpus lines per language (null: all)",
    "parallel": "parallel sentences for harmony weights (AmericasNLI alignment table or TSV)",
    "unlabelled": "text of other languages for adversarial training ({lang}; a tagging file: labels unused)",
    "to_iob2": "convert IOB1 NER tags to IOB2 when reading: true, or a list of the languages needing it",
    "map_labels": "rename gold labels of the target data before scoring, e.g. {B-MISC: O}",
    "alignment": "{target: [source-language file, target-language file]} of line-aligned translations: "
    "under the table, the median cosine of their mean-pooled final states for the base model and for "
    "the model of each finetune row fine-tuned from it (Keung et al. Table 3)",
    "alignment_limit": "use the first N translation pairs of each alignment file pair (null: all)",
    "similar_task": "Macular rows: the similar task trained alongside (e.g. paraphrase for nli)",
    "similar_train": "Macular rows: labelled data of the similar task ({lang}: the source)",
    "dictionaries": "Macular rows: {lang: TSV of word pairs} from the source language",
    "dictionary_parallel": "Macular rows: {lang} files parallel to task_train, dictionaries induced "
    "from their first train_examples rows (used for languages without a TSV)",
    "dictionary_languages": "Macular rows: code-switching languages whose dictionaries are induced",
}
_ROW_KEYS = {
    "name": "row id (for --only)",
    "label": "row label in the table",
    "method": "finetune (full fine-tuning of the base model), adapters (packs + task adapters, a target "
    "pack per target), source-pack (task adapter read through its source pack: targets the base "
    "already covers) or macular (a Macular adapter on the first source, read like source-pack)",
    "sources": "source languages of this row (default: the recipe's)",
    "source_pack": "overrides of defaults.source_pack",
    "target_pack": "overrides of defaults.target_pack",
    "task_adapter": "overrides of defaults.task_adapter (TaskAdapterConfig options)",
    "combine": "overrides of defaults.combine (HarmonyConfig options)",
    "macular": "overrides of defaults.macular (MacularConfig: a preset name or options)",
    "model": "base (default) or student (the recipe's distilled student) as the encoder",
    "train_on": "finetune rows: each (one model per target, on its own task data) or all (one model on "
    "every target's task data); default: the first source",
    "note": "a footnote for the row",
    "reference": "the paper's number for this row (shown in its own column)",
    "against": "the row (or list of rows) this row is measured against in the report's findings, e.g. "
    "an ablation against the full method (default: the first row)",
}
_PACK_KEYS = {
    "vocab": "new (search/train a target vocabulary) or base (keep the base vocabulary)",
    "init": "embedding initialisation: unibridge, focus, overlap or random",
    "alignment": "procrustes or none",
    "vocab_search": "VocabSearchConfig (a preset name or options)",
    "adapter": "LanguageAdapterConfig (a preset name or options)",
    "fasttext_dim": "fastText dimension of the initialisation",
    "fasttext_epochs": "fastText epochs",
    "clean": "clean the corpus (UniBERT-style) first",
    "eval_lines": "held-out corpus lines for the perplexity report",
}
# what a pack that keeps the base vocabulary uses (adapt reads the other keys for a new one only)
_BASE_VOCAB_PACK_KEYS = ("vocab", "adapter", "clean", "eval_lines")
_DEFAULT_KEYS = ("source_pack", "target_pack", "task_adapter", "combine", "macular")
METHODS = ("finetune", "adapters", "source-pack", "macular")
# `finetune` trains whole models (method: finetune), which need a far smaller learning rate than
# adapters; without it finetune rows use task_adapter's settings
_TRAINING_KEYS = ("language_adapter", "task_adapter", "finetune")


# ---------------------------------------------------------------------- budgets and validation
def _is_budget_map(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and set(value) <= set(BUDGETS)


def resolve_budget(value: Any, budget: str, where: str = "recipe") -> Any:
    """`value` with every ``{smoke: .., cpu: .., paper: ..}`` mapping replaced by its `budget` entry."""
    if _is_budget_map(value):
        if budget not in value:
            raise ConfigError(f"{where}: no value for budget {budget!r} (given: {', '.join(value)})")
        return resolve_budget(value[budget], budget, where)
    if isinstance(value, Mapping):
        return {k: resolve_budget(v, budget, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_budget(v, budget, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _check_keys(data: Any, allowed: Mapping[str, str] | Sequence[str], where: str) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__} {data!r}")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (valid keys: {', '.join(sorted(allowed))})")
    return dict(data)


# data keys holding a count, and the least value that makes sense (test_skip may be 0)
_DATA_COUNTS = {
    "train_examples": 1,
    "dev_examples": 0,
    "test_limit": 1,
    "test_skip": 0,
    "corpus_lines": 1,
    "alignment_limit": 1,
}


def _check_data_values(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Counts are whole numbers, `to_iob2` and `map_labels` have their shapes: a mistyped value fails
    when the recipe loads, naming its key, not as a TypeError hours into a run."""
    for key, least in _DATA_COUNTS.items():
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            expected = f"a whole number >= {least} or null ({_DATA_KEYS[key]})"
            raise ConfigError(f"{where}.{key}: expected {expected}, got {value!r}")
    to_iob2 = data.get("to_iob2")
    if to_iob2 is not None and not isinstance(to_iob2, bool) and not _strings(to_iob2):
        raise ConfigError(f"{where}.to_iob2: expected true/false or a list of languages, got {to_iob2!r}")
    labels = data.get("map_labels")
    if labels is not None and not (isinstance(labels, Mapping) and _strings([*labels, *labels.values()])):
        raise ConfigError(f"{where}.map_labels: expected a mapping of label to label, got {labels!r}")
    return data


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _config(cls: Any, spec: Any, where: str, **fixed: Any) -> Any:
    """A Config from a preset name, or a mapping with an optional ``preset`` key plus options."""
    if spec is None or isinstance(spec, str):
        preset, options = spec, {}
    elif isinstance(spec, Mapping):
        options = dict(spec)
        preset = options.pop("preset", None)
    else:
        raise ConfigError(f"{where}: expected a preset name or a mapping, got {spec!r}")
    try:
        return cls.load(preset, **{**options, **fixed})
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def _against(value: Any, where: str) -> list[str]:
    """A row's `against`: one row name or a list of them (checked against the rows once all are read)."""
    if value is None:
        return []
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"{where}.against: a row name or a list of row names, not {value!r}")
    return list(names)


# ---------------------------------------------------------------------- the recipe
@dataclasses.dataclass
class Row:
    name: str
    label: str
    method: str
    sources: list[str]
    source_pack: dict[str, Any]
    target_pack: dict[str, Any]
    task_adapter: Any  # TaskAdapterConfig
    combine: Any  # HarmonyConfig
    macular: dict[str, Any] | None = None  # MacularConfig options (macular rows)
    model: str = "base"  # or "student"
    train_on: str | None = None  # finetune rows: "each" or "all"
    note: str | None = None
    reference: Any = None
    against: list[str] = dataclasses.field(default_factory=list)  # rows it is measured against


@dataclasses.dataclass
class Recipe:
    path: Path
    budget: str
    name: str
    title: str
    task: str
    base: str
    sources: list[str]
    targets: list[str]
    data: dict[str, Any]
    training: dict[str, Any]  # language_adapter / task_adapter -> TrainingConfig
    rows: list[Row]
    data_root: Path
    reference: str | None = None
    description: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    student: dict[str, Any] | None = None
    compare: list[dict[str, str]] = dataclasses.field(default_factory=list)

    def data_path(self, key: str, language: str | None = None, *, where: str | None = None) -> Path:
        """The data file `data.KEY` (for `language`), checked to exist."""
        return self._paths(key, language, many=False)[0]

    def data_paths(self, key: str, language: str | None = None) -> list[Path]:
        """Like `data_path`, for keys whose value may also be a list of files (the corpora)."""
        return self._paths(key, language, many=True)

    def data_paths_of(self, spec: Mapping[str, Any], language: str, where: str) -> list[Path]:
        """Files of {lang: path or paths} mappings outside `data` (the student's corpus)."""
        return self._paths(where, language, many=True, value=spec)

    def _paths(self, key: str, language: str | None, many: bool, value: Any = None) -> list[Path]:
        name = key if value is not None else f"data.{key}"  # how the recipe file spells it
        value = self.data.get(key) if value is None else value
        if isinstance(value, Mapping):
            if language not in value:
                raise ConfigError(
                    f"{self.path}: {name} has no entry for {language!r} (given: {', '.join(value)})"
                )
            value = value[language]
        values = value if many and isinstance(value, list) and value else [value]
        if not all(isinstance(v, str) for v in values):
            what = "a path or a list of paths" if many else "a path"
            raise ConfigError(f"{self.path}: {name} must be {what} relative to the data root")
        paths = []
        for item in values:
            path = self.data_root / item.replace("{lang}", language or "")
            if not path.is_file():
                what = name + (f" for {language}" if language else "")
                raise ConfigError(
                    f"missing data file {path} ({what} in {self.path}; data root {self.data_root}: "
                    "set --data-root or CROSSLING_DATA)"
                )
            paths.append(path)
        return paths


def default_data_root() -> Path:
    env = os.environ.get("CROSSLING_DATA")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "data")


def models_root() -> Path:
    env = os.environ.get("CROSSLING_MODELS")
    return Path(env) if env else REPO_ROOT.parent / "models"


def find_recipe(name: str | os.PathLike[str]) -> Path:
    """A recipe file from a path, or a name of `recipes/` (with or without .yaml)."""
    path = Path(name)
    if path.is_file():
        return path
    for candidate in (RECIPES_DIR / f"{name}.yaml", RECIPES_DIR / str(name)):
        if candidate.is_file():
            return candidate
    known = ", ".join(p.stem for p in list_recipes()) or "none"
    raise ConfigError(f"no recipe {str(name)!r} (a YAML path, or one of: {known})")


def list_recipes() -> list[Path]:
    return sorted(RECIPES_DIR.glob("*.yaml")) if RECIPES_DIR.is_dir() else []


def read_recipe_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read recipe {path}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)  # file:line, as editors jump
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML ({problem})") from None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: a recipe is a mapping of keys ({', '.join(_TOP_KEYS)})")
    return dict(raw)


def load_recipe(
    path: str | os.PathLike[str], budget: str = "smoke", data_root: str | os.PathLike[str] | None = None
) -> Recipe:
    """Read and check a recipe for `budget`: every key, every config and every data file."""
    from crossling.config import (
        HarmonyConfig,
        LanguageAdapterConfig,
        TaskAdapterConfig,
        TrainingConfig,
        VocabSearchConfig,
    )

    if budget not in BUDGETS:
        raise ConfigError(f"unknown budget {budget!r} (budgets: {', '.join(BUDGETS)})")
    path = find_recipe(path)
    where = str(path)
    raw = resolve_budget(_check_keys(read_recipe_yaml(path), _TOP_KEYS, where), budget, where)
    for required in ("name", "task", "base", "sources", "targets", "data", "rows"):
        if raw.get(required) in (None, "", [], {}):
            raise ConfigError(f"{where}: missing key {required!r} ({_TOP_KEYS[required]})")
    data = _check_data_values(_check_keys(raw["data"], _DATA_KEYS, f"{where}: data"), f"{where}: data")
    training_raw = _check_keys(raw.get("training"), _TRAINING_KEYS, f"{where}: training")
    training = {
        k: _config(TrainingConfig, training_raw.get(k, budget), f"{where}: training.{k}")
        for k in _TRAINING_KEYS
        if k != "finetune" or "finetune" in training_raw
    }
    training.setdefault("finetune", training["task_adapter"])
    defaults = _check_keys(raw.get("defaults"), _DEFAULT_KEYS, f"{where}: defaults")
    task = raw["task"]
    from crossling.tasks import TASKS

    if task not in TASKS:
        raise ConfigError(f"{where}: task: {task!r} is not one of {', '.join(TASKS)}")
    sources, targets = (
        _languages(raw["sources"], f"{where}: sources"),
        _languages(raw["targets"], f"{where}: targets"),
    )
    if not isinstance(raw["rows"], list):
        raise ConfigError(f"{where}: rows must be a list of rows")
    rows: list[Row] = []
    for i, row_raw in enumerate(raw["rows"]):
        row_where = f"{where}: rows[{i}]"
        row = _check_keys(row_raw, _ROW_KEYS, row_where)
        if not row.get("name"):
            raise ConfigError(f"{row_where}: missing key 'name'")
        row_where = f"{where}: rows[{i}] ({row['name']})"
        method = row.get("method", "adapters")
        if method not in METHODS:
            raise ConfigError(f"{row_where}.method: {method!r} is not one of {', '.join(METHODS)}")
        merged = {k: _merge(_preset_map(defaults.get(k)), _preset_map(row.get(k))) for k in _DEFAULT_KEYS}
        for key in ("source_pack", "target_pack"):
            _check_keys(merged[key], _PACK_KEYS, f"{row_where}.{key}")
            for sub, cls in (("vocab_search", VocabSearchConfig), ("adapter", LanguageAdapterConfig)):
                fixed = {}
                if sub == "adapter" and merged[key].get("vocab", "new") == "base":
                    spec = merged[key].get(sub)
                    given = spec if isinstance(spec, Mapping) else {}
                    if "train_embeddings" not in given:
                        fixed["train_embeddings"] = False  # the base vocabulary stays frozen
                cfg = _config(cls, merged[key].get(sub), f"{row_where}.{key}.{sub}", **fixed)
                merged[key][sub] = cfg.to_dict()
        task_cfg = _config(TaskAdapterConfig, merged["task_adapter"], f"{row_where}.task_adapter", task=task)
        if method == "finetune" and task_cfg.mode != "finetune":
            task_cfg = task_cfg.replace(mode="finetune")
        combine = _config(HarmonyConfig, merged["combine"], f"{row_where}.combine")
        row_sources = _languages(row.get("sources", sources), f"{row_where}.sources")
        unknown = sorted(set(row_sources) - set(sources))
        if unknown:
            raise ConfigError(f"{row_where}.sources: {unknown[0]!r} is not one of the recipe's sources")
        macular = None
        if method == "macular":
            macular = _macular_options(merged["macular"], task, data, f"{row_where}.macular")
        if method in ("source-pack", "macular") and len(row_sources) != 1:
            raise ConfigError(f"{row_where}: a {method} row reads targets through one source pack")
        model = row.get("model", "base")
        if model not in ("base", "student"):
            raise ConfigError(f"{row_where}.model: {model!r} is not base or student")
        if model == "student" and not raw.get("student"):
            raise ConfigError(f"{row_where}.model: student, but the recipe has no 'student' section")
        train_on = row.get("train_on")
        if train_on is not None and (train_on not in ("each", "all") or method != "finetune"):
            raise ConfigError(f"{row_where}.train_on: 'each' or 'all', for finetune rows only")
        rows.append(
            Row(
                name=str(row["name"]),
                label=str(row.get("label", row["name"])),
                method=method,
                sources=row_sources,
                source_pack=merged["source_pack"],
                target_pack=merged["target_pack"],
                task_adapter=task_cfg,
                combine=combine,
                macular=macular,
                model=model,
                train_on=train_on,
                note=row.get("note"),
                reference=row.get("reference"),
                against=_against(row.get("against"), row_where),
            )
        )
    names = [r.name for r in rows]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{where}: row name {dupes[0]!r} is used twice")
    for i, row in enumerate(rows):
        for other in row.against:
            if other not in names or other == row.name:
                raise ConfigError(
                    f"{where}: rows[{i}] ({row.name}).against: {other!r} is not another row's name "
                    f"(rows: {', '.join(names)})"
                )
    notes = raw.get("notes") or []
    if not isinstance(notes, str) and not _strings(notes):
        raise ConfigError(f"{where}: notes: expected a string or a list of strings, got {notes!r}")
    student = None
    if raw.get("student"):
        student = _check_keys(raw["student"], _STUDENT_KEYS, f"{where}: student")
        from crossling.distill.config import DISTILL_TRAINING_DEFAULTS

        # the paper's optimiser settings under whatever the recipe gives (as `crossling distill`)
        spec = {**DISTILL_TRAINING_DEFAULTS, **_preset_map(student.get("training", budget))}
        student["training"] = _config(TrainingConfig, spec, f"{where}: student.training").to_dict()
        try:
            _student_config(student)  # a wrong preset or size fails now, not after hours of work
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
    compare = raw.get("compare") or []
    for i, pair in enumerate(compare):
        pair_where = f"{where}: compare[{i}]"
        _check_keys(pair, {"label": "", "each": "", "all": ""}, pair_where)
        for side in ("each", "all"):
            if pair.get(side) not in names:
                raise ConfigError(f"{pair_where}.{side}: {pair.get(side)!r} is not a row name")
    recipe = Recipe(
        path=path,
        budget=budget,
        name=str(raw["name"]),
        title=str(raw.get("title", raw["name"])),
        task=task,
        base=str(raw["base"]),
        sources=sources,
        targets=targets,
        data=data,
        training=training,
        rows=rows,
        data_root=Path(data_root) if data_root is not None else default_data_root(),
        reference=raw.get("reference"),
        description=raw.get("description"),
        notes=[notes] if isinstance(notes, str) else list(notes),
        student=student,
        compare=[dict(p) for p in compare],
    )
    _check_data(recipe)
    return recipe


def _languages(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of language codes, got {value!r}")
    return list(value)


def _preset_map(value: Any) -> dict[str, Any]:
    """A section given as a preset name becomes {"preset": name}, so rows can override it."""
    if value is None:
        return {}
    return {"preset": value} if isinstance(value, str) else dict(value)


def _macular_options(spec: Mapping[str, Any], task: str, data: Mapping[str, Any], where: str) -> dict:
    """MacularConfig options of a row: its preset + options, tasks = [task, data.similar_task]."""
    from crossling.macular import MacularConfig

    similar = data.get("similar_task")
    tasks = [task] if not similar else [task, similar]
    options = {k: v for k, v in spec.items() if k != "preset"}
    preset = dict(MacularConfig.PRESETS.get(spec.get("preset", "macular"), {}))
    if spec.get("preset", "macular") not in MacularConfig.PRESETS:
        raise ConfigError(
            f"{where}: unknown preset {spec['preset']!r} (presets: {', '.join(MacularConfig.PRESETS)})"
        )
    return _config(MacularConfig, {"tasks": tasks, **preset, **options}, where).to_dict()


def _check_data(recipe: Recipe) -> None:
    """Every file the recipe's rows read exists (checked before anything runs)."""
    needed_sources = sorted({s for r in recipe.rows for s in r.sources}, key=recipe.sources.index)
    for key in ("task_train", "task_dev"):
        for source in needed_sources if recipe.data.get(key) else []:
            recipe.data_path(key, source)
    for target in recipe.targets:
        recipe.data_path("test", target)
        if any(r.train_on for r in recipe.rows):
            recipe.data_path("task_train", target)
            if recipe.data.get("task_dev"):
                recipe.data_path("task_dev", target)
    _check_test_rows_unseen(recipe)
    if recipe.student:
        for lang in recipe.student.get("corpus") or {}:
            recipe.data_paths_of(recipe.student["corpus"], lang, "student.corpus")
    if any(r.method != "finetune" for r in recipe.rows):
        for source in needed_sources:
            recipe.data_paths("source_corpus", source)
    if any(r.method == "adapters" for r in recipe.rows):
        for target in recipe.targets:
            recipe.data_paths("target_corpus", target)
    for row in recipe.rows:
        if row.method == "macular":
            source = row.sources[0]
            if len(row.macular["tasks"]) > 1:
                recipe.data_path("similar_train", source)
            if row.macular.get("code_switch", True):
                _dictionaries(recipe, row)
    if any(r.method == "adapters" and r.combine.strategy in HARMONY_STRATEGIES for r in recipe.rows):
        recipe.data_path("parallel")
    if any(r.task_adapter.adversarial != "none" for r in recipe.rows):
        for target in recipe.targets:
            recipe.data_path("unlabelled", target)
    if (alignment := recipe.data.get("alignment")) is not None:
        where = f"{recipe.path}: data.alignment"
        if not isinstance(alignment, Mapping) or not alignment:
            raise ConfigError(f"{where} must map targets to [source-language file, target-language file]")
        if extra := sorted(set(alignment) - set(recipe.targets)):
            raise ConfigError(
                f"{where}: {extra[0]!r} is not one of the targets ({', '.join(recipe.targets)})"
            )
        if not any(r.method == "finetune" and r.model == "base" for r in recipe.rows):
            raise ConfigError(
                f"{where} is measured on finetune rows of the base model, and this recipe has none"
            )
        if any(r.name == BASE_ROW for r in recipe.rows):
            raise ConfigError(f"{where}: the row name {BASE_ROW!r} is the alignment table's base model row")
        for target in alignment:
            files = recipe.data_paths("alignment", target)
            if len(files) != 2:
                raise ConfigError(f"{where}.{target} must be two line-aligned files, not {len(files)}")
    _resolve_base(recipe, check=True)


def _check_test_rows_unseen(recipe: Recipe) -> None:
    """When a language's test file is also its task_train file (XNLI/PAWS-X have dev sets only), the
    rows scored must come after the rows trained and selected on."""
    used = (recipe.data.get("train_examples") or 0) + (recipe.data.get("dev_examples") or 0)
    for lang in [*recipe.sources, *recipe.targets]:
        try:
            same = recipe.data_path("test", lang) == recipe.data_path("task_train", lang)
        except ConfigError:
            continue
        if same and (recipe.data.get("train_examples") is None or recipe.data.get("test_skip", 0) < used):
            raise ConfigError(
                f"{recipe.path}: data.test and data.task_train are the same file for {lang!r}: set data."
                f"test_skip to at least train_examples + dev_examples ({used}) so no trained row is scored"
            )


def _dictionaries(recipe: Recipe, row: Row) -> dict[str, Path]:
    """Input key -> file of a Macular row's dictionaries: a TSV, or parallel rows to induce one from."""
    given = recipe.data.get("dictionaries") or {}
    return {
        f"dictionary_{lang}" if lang in given else f"parallel_{lang}": recipe.data_path(
            "dictionaries" if lang in given else "dictionary_parallel", lang
        )
        for lang in _dictionary_languages(recipe, row)
    }


def _dictionary_languages(recipe: Recipe, row: Row) -> list[str]:
    langs = list(recipe.data.get("dictionaries") or {}) + list(recipe.data.get("dictionary_languages") or [])
    if not langs:
        raise ConfigError(
            f"{recipe.path}: row {row.name!r} code-switches, so data.dictionaries or "
            "data.dictionary_languages (+ data.dictionary_parallel) must name its languages"
        )
    return list(dict.fromkeys(langs))


def _resolve_base(recipe: Recipe, check: bool = False) -> Path | None:
    """The base model's directory (None for a tiny model the runner builds)."""
    if recipe.base in TINY_BASES:
        return None
    for candidate in (Path(recipe.base), models_root() / recipe.base):
        if (candidate / "config.json").is_file():
            return candidate
    if check:
        raise ConfigError(
            f"{recipe.path}: base model {recipe.base!r} not found (looked in ./ and {models_root()}); "
            f"build it with `python ../shared/tools/base_models.py {models_root()}` or set CROSSLING_MODELS"
        )
    return None


# ---------------------------------------------------------------------- stages
def _combine_params(row: Row, n_adapters: int) -> dict[str, Any] | None:
    """The combination settings an evaluation uses (its cache key holds these only): none for one
    model, the strategy alone where no harmony weights are computed."""
    if row.method != "adapters" or n_adapters < 2:
        return None
    if row.combine.strategy in HARMONY_STRATEGIES:
        return row.combine.to_dict()
    return {"strategy": row.combine.strategy}


def _digest_file(path: Path, cache: dict[Path, str]) -> str:
    if path not in cache:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        cache[path] = h.hexdigest()
    return cache[path]


@dataclasses.dataclass
class Stage:
    kind: str
    label: str
    params: dict[str, Any]
    deps: dict[str, Stage]
    inputs: dict[str, Path]
    fn: Callable[[Stage, Path], dict[str, Any]]
    key: str = ""

    def directory(self, work: Path) -> Path:
        return work / "stages" / f"{self.kind}-{self.key[:16]}"


class StageBusy(Exception):
    """The stage (or one it needs) is being run by another process."""

    def __init__(self, stage: Stage, holder: Mapping[str, Any]):
        super().__init__(stage.label)
        self.stage, self.holder = stage, dict(holder)


def _acquire_lock(directory: Path) -> tuple[int | None, dict[str, Any]]:
    """Try to take the stage's lock: (file descriptor, our record) when taken, else (None, the holder's
    record as far as it could be read).

    An advisory `flock` on lock.json: the kernel releases it when its process ends, however it ends,
    so a killed run never leaves a stale lock and two processes can never both hold one. The file
    itself stays (removing it would let a late opener lock an orphaned copy); its content only says
    who holds it, for the other processes' messages. A release empties it, so a record found when
    taking the lock is that of a run that was interrupted: it is kept in attempts.json first.
    """
    import fcntl
    import socket

    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _lock_record(fd)
        os.close(fd)
        return None, holder
    previous = _lock_record(fd)
    if previous and not (directory / STAGE_FILE).is_file():
        _keep_interrupted_attempt(directory, previous)  # (a finished stage's holder died releasing)
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(mine).encode("utf-8"), 0)
    return fd, mine


def _lock_record(fd: int) -> dict[str, Any]:
    """What lock.json says of its holder, {} when empty (released) or unreadable."""
    try:
        record = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _keep_interrupted_attempt(directory: Path, holder: Mapping[str, Any]) -> None:
    """Add an interrupted run of the stage (its lock record) to attempts.json: from its start to the
    last file it wrote in the stage directory, a checkpoint or a corpus that a resumed run reuses;
    work after that file was lost and is done again, so it is not counted. File times, so a work
    directory shared between machines needs their clocks in step. Best effort: a failure here is
    logged and never stops the run."""
    from crossling.artifacts import write_json_atomic

    try:
        started = holder.get("started")
        if isinstance(started, bool) or not isinstance(started, (int, float)) or not math.isfinite(started):
            raise ValueError(f"no start time in the lock record {dict(holder)}")
        # files named .* are the temporary files of atomic writes, not saved work
        written = [
            path.stat().st_mtime
            for path in directory.rglob("*")
            if path.is_file()
            and not path.name.startswith(".")
            and path.name not in (LOCK_FILE, ATTEMPTS_FILE)
        ]
        attempt = {
            "started": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
            "pid": holder.get("pid"),
            "host": holder.get("host"),
            "seconds": round(max([0.0, *(t - started for t in written)]), 2),
        }
        attempts = _interrupted_attempts(directory)
        same = ("started", "pid", "host")
        if not any(all(a.get(k) == attempt[k] for k in same) for a in attempts):  # kept once
            write_json_atomic(directory / ATTEMPTS_FILE, [*attempts, attempt])
    except (OSError, ValueError, TypeError, OverflowError) as err:
        logger.warning("%s: an interrupted run of this stage is not counted in its time: %s", directory, err)


def _interrupted_attempts(directory: Path) -> list[dict[str, Any]]:
    """The stage's interrupted runs kept so far (a damaged attempts.json counts none, with a warning)."""
    path = directory / ATTEMPTS_FILE
    if not path.is_file():
        return []
    try:
        attempts = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(attempts, list):
            raise ValueError("not a list")
        return [a for a in attempts if isinstance(a, dict) and isinstance(a.get("seconds"), (int, float))]
    except (OSError, ValueError) as err:
        logger.warning("%s: unreadable, earlier interrupted runs are not counted: %s", path, err)
        return []


def _release_lock(fd: int) -> None:
    import fcntl

    os.ftruncate(fd, 0)
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _precisions(params: Any) -> set[str]:
    """The precisions of the TrainingConfigs (`training` mappings, at any depth) in a stage's params."""
    found: set[str] = set()
    if isinstance(params, Mapping):
        for key, value in params.items():
            if key == "training" and isinstance(value, Mapping) and isinstance(value.get("precision"), str):
                found.add(value["precision"])
            else:
                found |= _precisions(value)
    elif isinstance(params, list | tuple):
        found = found.union(*(_precisions(v) for v in params))
    return found


def _stage_key(kind: str, params: Mapping[str, Any], deps: Mapping[str, Stage], digests: Mapping[str, str]):
    from crossling import __version__

    payload = {
        "kind": kind,
        "params": without_new_defaults(params),
        "deps": {k: d.key for k, d in sorted(deps.items())},
        "inputs": dict(sorted(digests.items())),
        "crossling": __version__,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class RecipeRunner:
    """Plans a recipe's stages (content-hashed) and runs those a set of rows needs."""

    def __init__(self, recipe: Recipe, work: str | os.PathLike[str], *, progress: bool = True):
        self.recipe = recipe
        self.work = Path(work)
        self.progress = progress
        self.stages: dict[str, Stage] = {}
        self.events: list[tuple[str, str, str]] = []  # (kind, label, "ran" | "cached")
        self._digests: dict[Path, str] = {}
        self._results: dict[str, dict[str, Any]] = {}
        self.cells: dict[tuple[str, str], Stage] = {}  # (row, target) -> evaluation stage
        # (row or BASE_ROW, target) -> alignment stage, for recipes with data.alignment
        self.alignment_cells: dict[tuple[str, str], Stage] = {}
        self.poll_seconds = 15.0  # how often to look again at stages other processes hold
        self._plan()

    # ------------------------------------------------------------------ planning
    def _stage(self, kind, label, params, fn, deps=None, inputs=None) -> Stage:
        deps, inputs = deps or {}, inputs or {}
        digests = {k: _digest_file(p, self._digests) for k, p in inputs.items()}
        key = _stage_key(kind, params, deps, digests)
        if key not in self.stages:
            self.stages[key] = Stage(kind, label, params, deps, inputs, fn, key)
        return self.stages[key]

    def _plan(self) -> None:
        r = self.recipe
        teacher = self._base_stage()
        student = self._student_stage(teacher) if r.student else None
        for row in r.rows:
            base = student if row.model == "student" else teacher
            if row.method == "finetune":
                if row.train_on == "all":  # one model on every target's task data
                    adapter = self._task_stage(row, r.targets, base, pack=None)
                for target in r.targets:
                    if row.train_on == "each":  # one model per target, on its own task data
                        adapter = self._task_stage(row, [target], base, pack=None)
                    elif row.train_on is None:
                        adapter = self._task_stage(row, row.sources[:1], base, pack=None)
                    self.cells[(row.name, target)] = self._eval_stage(row, target, base, [adapter], [], None)
                    if target in (r.data.get("alignment") or {}) and row.model == "base":
                        self.alignment_cells[(row.name, target)] = self._alignment_stage(
                            row.name, target, base, adapter
                        )
                continue
            packs = [self._pack_stage(row.source_pack, s, "source", base) for s in row.sources]
            if row.method == "macular":
                adapters = [self._macular_stage(row, row.sources[0], base, packs[0])]
            else:
                adapters = [
                    self._task_stage(row, [s], base, pack=p) for s, p in zip(row.sources, packs, strict=True)
                ]
            if row.method in ("source-pack", "macular"):
                for target in r.targets:
                    self.cells[(row.name, target)] = self._eval_stage(
                        row, target, base, adapters, packs, None
                    )
                continue
            for target in r.targets:
                target_pack = self._pack_stage(row.target_pack, target, "target", base)
                self.cells[(row.name, target)] = self._eval_stage(
                    row, target, base, adapters, packs, target_pack
                )

    def _alignment_stage(self, name: str, target: str, base: Stage, adapter: Stage) -> Stage:
        """Median cosine of the target's translation pairs through a model fine-tuned from `base` (the
        recipe's base model: rows on a student have none); `base` itself gets its own cell (BASE_ROW)
        alongside the first one."""
        r = self.recipe
        files = r.data_paths("alignment", target)  # two, checked on loading
        inputs = {"a": files[0], "b": files[1]}
        params = {
            "target": target,
            "limit": r.data.get("alignment_limit"),
            "max_length": ALIGNMENT_MAX_LENGTH,
            # beyond the paper (crossling.eval.alignment): non-translations' median cosine, retrieval
            "controls": {"non_translations": "derangement, seed 0", "retrieval": "ties count as found"},
        }
        if (BASE_ROW, target) not in self.alignment_cells:
            self.alignment_cells[(BASE_ROW, target)] = self._stage(
                "align",
                f"alignment of the base on {target}",
                params,
                _run_alignment,
                {"base": base},
                inputs,
            )
        deps = {"base": base, "adapter0": adapter}
        return self._stage("align", f"alignment of {name} on {target}", params, _run_alignment, deps, inputs)

    def _base_stage(self) -> Stage:
        r = self.recipe
        if r.base in TINY_BASES:
            return self._stage("base", r.base, {"tiny": r.base, "seed": 0}, _run_tiny_base)
        # Keyed by the content of every file (weights included, ~1 s per 500 MB), not by its name or
        # place: new weights of the same size rerun what depends on them, a moved copy reruns nothing.
        path = _resolve_base(r, check=True)
        files = {
            str(f.relative_to(path)): f
            for f in sorted(path.rglob("*"))
            if f.is_file()
            and f.suffix != ".md"
            and not any(part.startswith(".") for part in f.relative_to(path).parts)  # .cache/ etc.
        }
        return self._stage("base", r.base, {"model": "content"}, _run_model_base, inputs=files)

    def _pack_stage(self, spec: dict[str, Any], language: str, role: str, base: Stage) -> Stage:
        r = self.recipe
        if spec.get("vocab", "new") == "base":  # what only a new vocabulary uses stays out of the key
            spec = {k: v for k, v in spec.items() if k in _BASE_VOCAB_PACK_KEYS}
        corpora = r.data_paths(f"{role}_corpus", language)
        params = {
            "language": language,
            "pack": spec,
            "corpus_lines": r.data.get("corpus_lines"),
            "training": r.training["language_adapter"].to_dict(),
        }
        return self._stage(
            "pack",
            f"{role} pack {language}",
            params,
            _run_pack,
            deps={"base": base},
            inputs={f"corpus{i}": path for i, path in enumerate(corpora)},
        )

    def _student_stage(self, teacher: Stage) -> Stage:
        spec = dict(self.recipe.student or {})
        corpus = spec.get("corpus") or {}
        inputs = {
            f"corpus_{lang}_{i}": path
            for lang in corpus
            for i, path in enumerate(self.recipe.data_paths_of(corpus, lang, "student.corpus"))
        }
        params = {k: v for k, v in spec.items() if k != "corpus"} | {"languages": list(corpus)}
        return self._stage("student", "distilled student", params, _run_student, {"base": teacher}, inputs)

    def _task_stage(self, row: Row, languages: list[str], base: Stage, pack: Stage | None) -> Stage:
        r = self.recipe
        source = languages[0] if len(languages) == 1 else "+".join(languages)
        params = {
            "task": r.task,
            "language": source,
            "config": row.task_adapter.to_dict(),
            "training": r.training["finetune" if row.method == "finetune" else "task_adapter"].to_dict(),
            "train_examples": r.data.get("train_examples"),
            "dev_examples": r.data.get("dev_examples"),
            "to_iob2": _to_iob2(r, languages),
        }
        if len(languages) == 1:
            inputs = {"train": r.data_path("task_train", source)}
            if r.data.get("task_dev"):
                inputs["dev"] = r.data_path("task_dev", source)
        else:  # several languages' task data, concatenated (each cut to train_examples)
            inputs = {f"train_{lang}": r.data_path("task_train", lang) for lang in languages}
            if r.data.get("task_dev"):
                inputs.update({f"dev_{lang}": r.data_path("task_dev", lang) for lang in languages})
        if row.task_adapter.adversarial != "none":
            for target in r.targets:
                inputs[f"unlabelled_{target}"] = r.data_path("unlabelled", target)
        deps = {"base": base} if pack is None else {"base": base, "pack": pack}
        return self._stage("task", f"task adapter {source} ({row.name})", params, _run_task, deps, inputs)

    def _macular_stage(self, row: Row, source: str, base: Stage, pack: Stage) -> Stage:
        r = self.recipe
        params = {
            "task": r.task,
            "language": source,
            "config": row.macular,
            "training": r.training["task_adapter"].to_dict(),
            "train_examples": r.data.get("train_examples"),
            "dev_examples": r.data.get("dev_examples"),
        }
        inputs = {"train": r.data_path("task_train", source)}
        if r.data.get("task_dev"):  # scored at the end (else on the rows after train_examples)
            inputs["dev"] = r.data_path("task_dev", source)
        if len(row.macular["tasks"]) > 1:
            inputs["similar"] = r.data_path("similar_train", source)
        if row.macular.get("code_switch", True):
            inputs.update(_dictionaries(r, row))
        deps = {"base": base, "pack": pack}
        return self._stage(
            "macular", f"Macular adapter {source} ({row.name})", params, _run_macular, deps, inputs
        )

    def _eval_stage(self, row, target, base, adapters, packs, target_pack) -> Stage:
        r = self.recipe
        combine = _combine_params(row, len(adapters))
        params = {
            "task": r.task,
            "target": target,
            "method": row.method,
            "combine": combine,
            "limit": r.data.get("test_limit"),
            "skip": r.data.get("test_skip") or 0,
            "to_iob2": _to_iob2(r, [target]),
            "map_labels": r.data.get("map_labels"),
        }
        deps = {"base": base, **{f"adapter{i}": a for i, a in enumerate(adapters)}}
        deps.update({f"source_pack{i}": p for i, p in enumerate(packs)})
        if target_pack is not None:
            deps["target_pack"] = target_pack
        inputs = {"test": r.data_path("test", target)}
        if combine is not None and combine["strategy"] in HARMONY_STRATEGIES:
            inputs["parallel"] = r.data_path("parallel")
        return self._stage("eval", f"{row.name} on {target}", params, _run_eval, deps, inputs)

    # ------------------------------------------------------------------ running
    def is_done(self, stage: Stage) -> bool:
        path = stage.directory(self.work) / STAGE_FILE
        if not path.is_file():
            return False
        try:  # a stage.json cut short (a power loss before the disk wrote it) means: run it again
            return isinstance(json.loads(path.read_text(encoding="utf-8")).get("result"), dict)
        except (ValueError, AttributeError):
            logger.warning("%s is damaged: the stage %s runs again", path, stage.label)
            return False

    def record(self, stage: Stage) -> dict[str, Any]:
        """The finished stage's stage.json (result, seconds, finish time)."""
        return json.loads((stage.directory(self.work) / STAGE_FILE).read_text(encoding="utf-8"))

    def compute(self) -> dict[str, Any]:
        """What the table's cells cost: every stage they depend on, counted once, with the wall-clock
        seconds of those finished (a cached stage counts what it took when it ran)."""
        seen: dict[str, Stage] = {}
        todo = [*self.cells.values(), *self.alignment_cells.values()]
        while todo:
            stage = todo.pop()
            if stage.key not in seen:
                seen[stage.key] = stage
                todo.extend(stage.deps.values())
        done = [s for s in seen.values() if self.is_done(s)]
        seconds: dict[str, float] = {}
        precision: dict[str, int] = {}
        for stage in done:
            seconds[stage.kind] = seconds.get(stage.kind, 0.0) + float(self.record(stage).get("seconds") or 0)
            if found := _precisions(stage.params):  # `auto` has become what the machine ran
                name = found.pop() if len(found) == 1 else "mixed"  # each stage counts once
                precision[name] = precision.get(name, 0) + 1
        return {
            "stages": len(seen),
            "finished": len(done),
            "seconds": round(sum(seconds.values()), 1),
            "seconds_by_kind": {k: round(v, 1) for k, v in sorted(seconds.items())},
            "training_precision": dict(sorted(precision.items())),
        }

    def result(self, stage: Stage) -> dict[str, Any]:
        if stage.key not in self._results:
            self._results[stage.key] = self.record(stage)["result"]
        return self._results[stage.key]

    def execute(self, stage: Stage) -> dict[str, Any]:
        """The stage's result: cached, or run now (after its dependencies); StageBusy when another
        process holds it or one of its dependencies."""
        if self.is_done(stage):
            if stage.key not in self._results:
                self.events.append((stage.kind, stage.label, "cached"))
            return self.result(stage)
        busy = None
        for dep in stage.deps.values():  # every free dependency runs, even after a busy one
            try:
                self.execute(dep)
            except StageBusy as err:
                busy = busy or err
        if busy is not None:
            raise busy
        directory = stage.directory(self.work)
        directory.mkdir(parents=True, exist_ok=True)
        fd, holder = _acquire_lock(directory)
        if fd is None:
            raise StageBusy(stage, holder)
        try:
            if self.is_done(stage):  # finished by another process between our check and the lock
                self.events.append((stage.kind, stage.label, "cached"))
                return self.result(stage)
            return self._run_stage(stage, directory, holder)
        finally:
            _release_lock(fd)

    def _run_stage(self, stage: Stage, directory: Path, lock: Mapping[str, Any]) -> dict[str, Any]:
        from crossling.artifacts import write_json_atomic

        logger.info("recipe %s: running %s [%s]", self.recipe.name, stage.label, directory.name)
        started = time.perf_counter()
        stage_ctx = _StageContext(self, stage, directory)
        try:
            result = stage.fn(stage, stage_ctx)
        except BaseException:  # Ctrl-C or an error: a rerun resumes from what this run saved
            _keep_interrupted_attempt(directory, lock)
            raise
        seconds = time.perf_counter() - started
        earlier = _interrupted_attempts(directory)
        write_json_atomic(
            directory / STAGE_FILE,
            {
                "kind": stage.kind,
                "label": stage.label,
                "key": stage.key,
                "params": stage.params,
                "deps": {k: d.directory(self.work).name for k, d in stage.deps.items()},
                "inputs": {k: str(p) for k, p in stage.inputs.items()},
                "result": result,
                # what the result cost: this run and the kept part of the runs it resumed
                "seconds": round(seconds + sum(float(a["seconds"]) for a in earlier), 2),
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "interrupted_attempts": earlier,
            },
        )
        (directory / ATTEMPTS_FILE).unlink(missing_ok=True)  # in stage.json now; a rerun starts afresh
        self._results[stage.key] = result
        self.events.append((stage.kind, stage.label, "ran"))
        return result

    def run(self, only: Sequence[str] | None = None) -> dict[str, Any]:
        """Run the stages of the rows in `only` (all by default); write and return the table.

        Several processes may run the same recipe in the same work directory: each stage is locked
        while it runs, a process skips cells whose stages another one holds and comes back to them
        when it has nothing else to do, so N processes share the work (one core each).
        """
        rows = self._select(only)
        pending = [self.cells[(row.name, t)] for row in rows for t in self.recipe.targets]
        names = {BASE_ROW, *(row.name for row in rows)}
        pending += [stage for (name, _), stage in self.alignment_cells.items() if name in names]
        told: set[str] = set()
        while pending:
            waiting = []
            for cell in pending:
                try:
                    self.execute(cell)
                except StageBusy as busy:
                    waiting.append(cell)
                    if busy.stage.key not in told:
                        told.add(busy.stage.key)
                        logger.info(
                            "recipe %s: %s is being run by process %s on %s; going on with other stages",
                            self.recipe.name,
                            busy.stage.label,
                            busy.holder.get("pid"),
                            busy.holder.get("host"),
                        )
            if len(waiting) == len(pending):  # nothing else to do: wait for the other process(es)
                self._wait()
            pending = waiting
        return self.write_table()

    def _wait(self) -> None:
        time.sleep(self.poll_seconds)

    def _select(self, only: Sequence[str] | None) -> list[Row]:
        if only is None:
            return list(self.recipe.rows)
        names = [r.name for r in self.recipe.rows]
        if not only:  # e.g. an empty "$ROWS": running the whole table instead could cost hours
            raise ConfigError(f"--only names no row (rows of {self.recipe.path}: {', '.join(names)})")
        unknown = [n for n in only if n not in names]
        if unknown:
            raise ConfigError(
                f"--only: no row {unknown[0]!r} in {self.recipe.path} (rows: {', '.join(names)})"
            )
        return [r for r in self.recipe.rows if r.name in only]

    # ------------------------------------------------------------------ the table
    def table(self) -> dict[str, Any]:
        from crossling import __version__
        from crossling.eval.metrics import PRIMARY_METRIC

        r = self.recipe
        rows = []
        for row in r.rows:
            scores: dict[str, float | None] = {}
            weights: dict[str, Any] = {}
            for target in r.targets:
                stage = self.cells[(row.name, target)]
                if self.is_done(stage):
                    res = self.result(stage)
                    scores[target] = res["score"]
                    if res.get("weights"):
                        weights[target] = res["weights"]
                else:
                    scores[target] = None
            done = [v for v in scores.values() if v is not None]
            rows.append(
                {
                    "name": row.name,
                    "label": row.label,
                    "scores": scores,
                    "average": sum(done) / len(done) if len(done) == len(scores) else None,
                    "weights": weights,
                    "note": row.note,
                    "reference": row.reference,
                    "against": row.against,
                }
            )
        command = f"crossling recipe run {_display_path(r.path)} --budget {r.budget}"
        return {
            "recipe": r.name,
            "title": r.title,
            "reference": r.reference,
            "budget": r.budget,
            "task": r.task,
            "metric": PRIMARY_METRIC[r.task],
            "base": r.base,
            "sources": r.sources,
            "targets": r.targets,
            "rows": rows,
            "notes": r.notes,
            "comparisons": [compare_rows(rows, pair) for pair in r.compare],
            "alignment": self._alignment_table(),
            "compute": self.compute(),
            "command": command,
            "crossling": __version__,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    def _alignment_table(self) -> dict[str, Any] | None:
        """The median cosines of the alignment cells (None in a cell not run yet), by row."""
        if not self.alignment_cells:
            return None
        targets = list(dict.fromkeys(t for _, t in self.alignment_cells))
        labels = {BASE_ROW: f"Base model ({self.recipe.base}, before task training)"}
        labels |= {row.name: row.label for row in self.recipe.rows}
        measures = ("median", "mismatched_median", "retrieval", "pairs")  # (None: measured before controls)
        rows = []
        for name in dict.fromkeys(n for n, _ in self.alignment_cells):
            cells = {t: self.alignment_cells.get((name, t)) for t in targets}
            results = {t: self.result(s) if s and self.is_done(s) else None for t, s in cells.items()}
            rows.append(
                {
                    "name": name,
                    "label": labels[name],
                    **{m: {t: res and res.get(m) for t, res in results.items()} for m in measures},
                }
            )
        files = {  # the pair of files each target's cells read
            t: [
                _display_path(p, self.recipe.data_root)
                for p in self.alignment_cells[(BASE_ROW, t)].inputs.values()
            ]
            for t in targets
        }
        return {"targets": targets, "files": files, "rows": rows}

    def write_table(self) -> dict[str, Any]:
        from crossling.artifacts import write_json_atomic, write_text_atomic

        table = self.table()
        write_json_atomic(self.work / "table.json", table)
        write_text_atomic(self.work / "table.md", table_markdown(table))
        return table


class _StageContext:
    """What a stage function sees: its directory, its dependencies' results and directories."""

    def __init__(self, runner: RecipeRunner, stage: Stage, directory: Path):
        self.runner, self.stage, self.dir = runner, stage, directory
        self.recipe = runner.recipe
        self.progress = runner.progress

    def dep_dir(self, name: str) -> Path:
        return self.stage.deps[name].directory(self.runner.work)

    def dep_result(self, name: str) -> dict[str, Any]:
        return self.runner.result(self.stage.deps[name])

    def base_path(self) -> str:
        res = self.dep_result("base")
        if res.get("built"):
            return str(self.dep_dir("base") / res["model"])
        # where the recipe finds the model now (its content is in the key), not where it was found
        # when the base stage ran
        return str(Path(_resolve_base(self.recipe, check=True)).resolve())


def _display_path(path: Path, root: Path | None = None) -> str:
    try:
        return str(path.resolve().relative_to((root or Path.cwd()).resolve()))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------- stage functions
def _run_tiny_base(stage: Stage, ctx: _StageContext) -> dict[str, Any]:
    from crossling.testing import tiny_bert, tiny_xlmr

    out = ctx.dir / "model"
    if out.exists():
        shutil.rmtree(out)
    (tiny_xlmr if stage.params["tiny"] == "tiny-xlmr" else tiny_bert)(out, seed=stage.params["seed"])
    return {"model": "model", "built": True}


def _run_model_base(stage: Stage, ctx: _StageContext) -> dict[str, Any]:
    path = _resolve_base(ctx.recipe, check=True)
    return {"model": str(Path(path).resolve()), "built": False}


def _clear(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


def _run_pack(stage: Stage, ctx: _StageContext) -> dict[str, Any]:
    from crossling.adapt import AdaptOptions, adapt
    from crossling.artifacts import write_text_atomic
    from crossling.config import LanguageAdapterConfig, TrainingConfig, VocabSearchConfig
    from crossling.data import read_sentences

    p, spec = stage.params, stage.params["pack"]
    files = [stage.inputs[k] for k in sorted(stage.inputs, key=lambda k: int(k.removeprefix("corpus")))]
    if len(files) == 1 and _is_plain_text(files[0]):
        corpus = files[0]
    else:  # several files, or labelled / structured ones: their running text, duplicates dropped
        seen = dict.fromkeys(s for path in files for s in read_sentences(path))
        corpus = write_text_atomic(ctx.dir / "corpus.txt", "\n".join(seen) + "\n")
    work = ctx.dir / "work"
    options = AdaptOptions(
        corpus=corpus,
        vocab=spec.get("vocab", "new"),
        init_method=spec.get("init", "unibridge"),
        alignment=spec.get("alignment", "procrustes"),
        vocab_search=VocabSearchConfig.load(spec.get("vocab_search")),
        adapter=LanguageAdapterConfig.load(spec["adapter"]),
        training=TrainingConfig.load(p["training"]),
        work_dir=work,
        resume=work.is_dir(),
        clean=spec.get("clean", True),
        eval_lines=spec.get("eval_lines", 500),
        max_corpus_lines=p["corpus_lines"],
        fasttext_dim=spec.get("fasttext_dim", 300),
        fasttext_epochs=spec.get("fasttext_epochs", 3),
        progress=ctx.progress,
    )
    _clear(ctx.dir / "pack")
    pack = adapt(p["language"], ctx.base_path(), ctx.dir / "pack", options)
    reports = pack.reports
    summary = {
        "corpus_files": [_display_path(f, ctx.recipe.data_root) for f in files],
        "corpus": {k: reports.get("corpus", {}).get(k) for k in ("source", "train_lines", "eval_lines")},
        "training": {k: reports.get("training", {}).get(k) for k in ("steps", "train_loss")},
    }
    if "vocab_search" in reports:
        summary["vocab_size"] = reports["vocab_search"].get("chosen_size")
    if "eval" in reports.get("training", {}):
        summary["perplexity"] = reports["training"]["eval"].get("perplexity")
    return {"pack": "pack", **summary}


def _run_task(stage: Stage, ctx: _StageContext) -> dict[str, Any]:
    from crossling.config import TaskAdapterConfig, TrainingConfig
    from crossling.tasks import train_task

    p = stage.params
    train, dev = [], []
    for key in [k for k in stage.inputs if k == "train" or k.startswith("train_")]:
        part_train, part_dev = _task_split(stage, key, key.replace("train", "dev", 1))
        train += part_train
        dev += part_dev
    unlabelled = {
        k.removeprefix("unlabelled_"): _unlabelled_text(p["task"], v)
        for k, v in stage.inputs.items()
        if k.startswith("unlabelled_")
    }
    work = ctx.dir / "work"
    checkpoints = work / "checkpoints"
    _clear(ctx.dir / "adapter")
    pack = ctx.dep_dir("pack") / ctx.dep_result("pack")["pack"] if "pack" in stage.deps else None
    adapter = train_task(
        p["task"],
        train,
        ctx.dir / "adapter",
        dev=dev or None,
        pack=pack,
        base=ctx.base_path(),
        language=p["language"],
        config=TaskAdapterConfig.load(p["config"]),
        training=TrainingConfig.load(p["training"]),
        unlabelled=unlabelled or None,
        work_dir=work,
        resume=checkpoints.is_dir() and any(checkpoints.iterdir()),
        progress=ctx.progress,
    )
    summary = adapter.config.get("summary", {})
    out = {"adapter": "adapter", "train_examples": len(train), "dev_examples": len(dev or [])}
    out["steps"] = summary.get("steps")
    if "dev" in adapter.eval_results:
        dev_scores = adapter.eval_results["dev"]
        out["dev"] = {k: dev_scores[k] for k in ("accuracy", "f1") if k in dev_scores}
    return out


def _is_plain_text(path: Path) -> bool:
    from crossling.data import guess_format
    from crossling.errors import DataFormatError

    try:
        return guess_format(path) == "text"
    except DataFormatError:  # e.g. an unrecognised tab-separated layout: read_sentences takes it whole
        return False


def _to_iob2(recipe: Recipe, languages: Sequence[str]) -> bool | list[str]:
    """data.to_iob2 for a stage over `languages`: true/false as given, or, from a list of languages,
    whether the one language is in it (a stage of several gets the sorted list of those in it)."""
    value = recipe.data.get("to_iob2", False)
    if isinstance(value, bool):
        return value
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{recipe.path}: data.to_iob2 must be true, false or a list of languages")
    if len(languages) == 1:
        return languages[0] in value
    return sorted(set(languages) & set(value)) or False


def _task_split(stage: Stage, train_key: str, dev_key: str) -> tuple[list, list]:
    """(train, dev) records of one language: the first train_examples rows, and the dev file's first
    dev_examples rows or, without a dev file, the rows after the training ones."""
    from crossling.tasks import read_task_data

    p = stage.params
    to_iob2 = p.get("to_iob2", False)  # Macular stages (pair tasks) have no such option
    if isinstance(to_iob2, list):  # a stage over several languages: the key names the language
        to_iob2 = (train_key.removeprefix("train_") if train_key != "train" else p["language"]) in to_iob2
    records = read_task_data(p["task"], stage.inputs[train_key], to_iob2=to_iob2)
    n_train, n_dev = p["train_examples"], p["dev_examples"]
    train = records[:n_train] if n_train is not None else records
    if dev_key in stage.inputs:
        return train, read_task_data(p["task"], stage.inputs[dev_key], to_iob2=to_iob2)[:n_dev]
    if n_train is not None and len(records) < n_train + (n_dev or 0):
        logger.warning(
            "%s has %d examples, fewer than train_examples + dev_examples (%d)",
            stage.inputs[train_key],
            len(records),
            n_train + (n_dev or 0),
        )
    return train, records[len(train) : len(train) + n_dev] if n_dev else []


def _run_student(stage: Stage, ctx: _StageContext) -> dict[str, Any]:
    from crossling.config import TrainingConfig
    from crossling.distill import distill

    p = stage.params
    corpus: dict[str, list[Path]] = {}
    for key, path in stage.inputs.items():  # corpus_LANG_I
        corpus.setdefault(key.removeprefix("corpus_").rsplit("_", 1)[0], []).append(path)
    config = _student_config(p)
    training = TrainingConfig.load(p["training"])
    work = ctx.dir / "work"
    _clear(ctx.dir / "student")
    student = distill(
        ctx.base_path(),
        corpus,
        ctx.dir / "student",
        config=config,
        training=training,
        work_dir=work,
        resume=work.is_dir(),
        progress=ctx.progress,
    )
    parameters = (student.metadata.get("student") or {}).get("parameters")
    return {"model": "student", "built": True, "parameters": parameters}


def _student_config(spec: Mapping[str, Any]) -> Any:
    """The DistillConfig of a recipe's `student` section: preset (name or options), size, corpus_lines."""
    from crossling.distill import DistillConfig

    preset = spec.get("preset", "unibert")
    options = {"max_lines_per_language": spec.get("corpus_lines") or 0}
    if "size" in spec or not isinstance(preset, Mapping) or "size" not in preset:
        options["size"] = spec.get("size", "xxsmall")
    return _config(DistillConfig, preset, "student", **options)


def _run_macular(stage: Stage, ctx: _StageContext) -> dict[str, Any]:
    from crossling.codeswitch import induce_from_parallel
    from crossling.config import TrainingConfig
    from crossling.macular import train_macular
    from crossling.tasks import read_task_data

    p = stage.params
    n_train = p["train_examples"]
    target_train, dev = _task_split(stage, "train", "dev")
    train = {p["task"]: target_train}
    tasks = p["config"]["tasks"]
    if len(tasks) > 1:
        similar = read_task_data(tasks[1], stage.inputs["similar"])
        train[tasks[1]] = similar[:n_train] if n_train is not None else similar
    dictionaries: dict[str, Any] = {}
    for key, path in stage.inputs.items():
        if key.startswith("dictionary_"):
            dictionaries[key.removeprefix("dictionary_")] = path
        elif key.startswith("parallel_"):
            # the rows parallel to the training rows: what a user with a little parallel text has
            other = read_task_data(p["task"], path)[: len(train[p["task"]])]
            source = [s for r in train[p["task"]][: len(other)] for s in (r["text_a"], r["text_b"])]
            target = [s for r in other for s in (r["text_a"], r["text_b"])]
            dictionaries[key.removeprefix("parallel_")] = induce_from_parallel(source, target)
    _clear(ctx.dir / "adapter")
    adapter = train_macular(
        train,
        ctx.dir / "adapter",
        dictionaries=dictionaries or None,
        pack=ctx.dep_dir("pack") / ctx.dep_result("pack")["pack"],
        dev=dev or None,
        config=p["config"],
        training=TrainingConfig.load(p["training"]),
    )
    report = adapter.config.get("macular", {})
    out = {"adapter": "adapter", "train_examples": {t: len(r) for t, r in train.items()}}
    out["dictionaries"] = {lang: len(d) for lang, d in dictionaries.items() if isinstance(d, dict)}
    out["seconds"] = report.get("seconds")
    if "dev" in adapter.eval_results:
        out["dev"] = {k: v for k, v in adapter.eval_results["dev"].items() if k in ("accuracy", "f1")}
    return out


def _unlabelled_text(task: str, path: Path) -> Path | list[str]:
    """A labelled tagging file gives its sentences (labels dropped); anything else is plain text."""
    from crossling.errors import DataFormatError
    from crossling.tasks import read_task_data

    if task not in ("ner", "pos"):
        return path
    try:
        records = read_task_data(task, path, to_iob2=True)
    except DataFormatError:
        return path
    return [" ".join(r["tokens"]) for r in records]


def _eval_records(stage: Stage) -> list[dict[str, Any]]:
    """The labelled test records an evaluation stage scores: read, sliced and label-mapped."""
    from crossling.eval.runner import _mapped
    from crossling.tasks import read_task_data

    p = stage.params
    records = read_task_data(p["task"], stage.inputs["test"], to_iob2=p["to_iob2"])
    skip = p.get("skip", 0)
    records = records[skip : skip + p["limit"] if p["limit"] is not None else None]
    if p["map_labels"]:
        records = _mapped(p["task"], records, p["map_labels"], str(stage.inputs["test"]))
    return records


def _run_eval(stage: Stage, ctx: _StageContext) -> dict[str, Any]:
    from crossling.eval.metrics import PRIMARY_METRIC, task_metrics
    from crossling.multisource import MultiSourcePredictor
    from crossling.tasks import load_task_model

    p = stage.params
    task = p["task"]
    records = _eval_records(stage)
    adapters = [
        ctx.dep_dir(name) / ctx.dep_result(name)["adapter"]
        for name in sorted((n for n in stage.deps if n.startswith("adapter")), key=lambda n: int(n[7:]))
    ]
    out: dict[str, Any] = {"examples": len(records)}
    if p["method"] == "finetune":
        model = load_task_model(adapters[0])
        labels = model.predict(records).labels
    elif p["method"] in ("source-pack", "macular"):  # the target is read through the source's pack
        pack = ctx.dep_dir("source_pack0") / ctx.dep_result("source_pack0")["pack"]
        labels = load_task_model(adapters[0], pack).predict(records).labels
    else:
        from crossling.config import HarmonyConfig

        source_packs = [
            ctx.dep_dir(name) / ctx.dep_result(name)["pack"]
            for name in sorted(
                (n for n in stage.deps if n.startswith("source_pack")), key=lambda n: int(n[11:])
            )
        ]
        combine = HarmonyConfig.load(p["combine"])
        strategy = combine.strategy if len(adapters) > 1 else "uniform"
        predictor = MultiSourcePredictor.from_pretrained(
            ctx.dep_dir("target_pack") / ctx.dep_result("target_pack")["pack"],
            adapters,
            parallel=stage.inputs.get("parallel"),
            source_packs=source_packs,
            strategy=strategy,
            config=combine,
        )
        prediction = predictor.predict_records(records)
        labels = prediction.labels
        out["weights"] = {k: round(v, 4) for k, v in predictor.running_weights.items()}
        out["strategy"] = strategy
    gold = [r["tags"] if "tags" in r else r["label"] for r in records]
    metrics = task_metrics(task, gold, labels)
    out["score"] = metrics[PRIMARY_METRIC[task]]
    out["metrics"] = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    return out


def _run_alignment(stage: Stage, ctx: _StageContext) -> dict[str, Any]:
    """Keung et al.'s Table 3 measure: the median cosine between the mean-pooled final states of
    translation pairs, through the base model or a fine-tuned row's model."""
    from crossling.eval.alignment import analyze_alignment, parallel_alignment, read_parallel_text
    from crossling.tasks import load_task_model

    p = stage.params
    a, b = read_parallel_text(stage.inputs["a"], stage.inputs["b"], limit=p["limit"])
    if "adapter0" not in stage.deps:
        summary = analyze_alignment(a, b, base=ctx.base_path(), max_length=p["max_length"])[0]
        return {k: v for k, v in summary.items() if k not in ("model", "task_adapter", "adversarial")}
    model = load_task_model(ctx.dep_dir("adapter0") / ctx.dep_result("adapter0")["adapter"])
    return parallel_alignment(lambda sentences: model.encode(sentences, max_length=p["max_length"]), a, b)


# ---------------------------------------------------------------------- output
def table_markdown(table: Mapping[str, Any]) -> str:
    metric = {"accuracy": "accuracy", "f1": "entity F1"}.get(table["metric"], table["metric"])
    targets = list(table["targets"])
    with_reference = any(row.get("reference") is not None for row in table["rows"])
    head = ["row", *targets, "average"] + (["paper (reference)"] if with_reference else [])
    lines = [
        f"### {table['title']}",
        "",
        f"{metric} (%), budget `{table['budget']}`, base `{table['base']}`, "
        f"sources {', '.join(table['sources'])}.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    footnotes = []
    for row in table["rows"]:
        cells = [_pct(row["scores"][t]) for t in targets] + [_pct(row["average"])]
        label = row["label"]
        if row.get("note"):
            footnotes.append(row["note"])
            label += f" [{len(footnotes)}]"
        if with_reference:
            cells.append("" if row.get("reference") is None else str(row["reference"]))
        lines.append("| " + " | ".join([label, *cells]) + " |")
    lines.append("")
    lines += [f"[{i}] {note}" for i, note in enumerate(footnotes, 1)]
    if table.get("reference"):
        lines.append(f"Rows follow {table['reference']}; the paper's numbers are not ours.")
    lines += [f"- {note}" for note in table.get("notes") or []]
    for c in table.get("comparisons") or []:
        if not c.get("complete", c["relative_improvement"] is not None):
            lines.append(f"- {c['label']}: 'all' vs 'each' not computed yet (rows unfinished).")
            continue
        if c["relative_improvement"] is None:
            lines.append(f"- {c['label']}: no relative improvement ('each' scores 0 on every target).")
            continue
        p_value = "—" if c["p_value"] is None else f"{c['p_value']:.3f}"
        t_n = c.get("t_n", c["n"])
        over = f" over {t_n} targets" if t_n != c["n"] else ""
        lines.append(
            f"- {c['label']}: '{c['all']}' over '{c['each']}' {100 * c['relative_improvement']:+.1f} % "
            f"on average (relative, over {c['n']} targets); paired t-test{over} t = {_f3(c['t'])}, "
            f"p = {p_value}."
        )
    if alignment := table.get("alignment"):
        lines += ["", *_alignment_markdown(alignment)]
    made = f"Made by `{table['command']}` (crossling {table['crossling']}, {table['date']})"
    compute = table.get("compute")
    if compute and compute.get("finished"):
        made += (
            f"; {compute['finished']} of {compute['stages']} stages, "
            f"{_duration(compute['seconds'])} of stage wall-clock time"
        )
        if precision := compute.get("training_precision"):  # tables made before it was recorded lack it
            made += "; trained in " + " and ".join(
                f"{name} ({n} stage{'s' * (n != 1)})" if len(precision) > 1 else name
                for name, n in precision.items()
            )
    lines += ["", made + "."]
    return "\n".join(lines).rstrip() + "\n"


def _alignment_markdown(alignment: Mapping[str, Any]) -> list[str]:
    targets = alignment["targets"]
    pairs = sorted({n for row in alignment["rows"] for n in row["pairs"].values() if n})
    files = "; ".join(f"{t}: {' / '.join(alignment['files'][t])}" for t in targets)
    lines = [
        "Alignment (Keung et al. Table 3): median cosine between the mean-pooled final states of a "
        f"sentence and its translation ({', '.join(map(str, pairs)) or '—'} pairs; {files}). Two controls "
        "beyond the paper: in brackets the same median over pairs that are not translations (each sentence "
        "against the translation of another, paired at random with a fixed seed), what a typical unrelated "
        "pair reaches; and retrieval, how often a sentence's translation is the nearest of all the "
        "translations.",
        "",
        "| model | " + " | ".join(f"{t}: cosine (non-translations) | {t}: retrieval" for t in targets) + " |",
        "|" + "---|" * (2 * len(targets) + 1),
    ]

    def cells(row: Mapping[str, Any], target: str) -> list[str]:
        if row["median"][target] is None:
            return ["—", "—"]
        control = (row.get("mismatched_median") or {}).get(target)
        retrieval = (row.get("retrieval") or {}).get(target)
        return [
            f"{row['median'][target]:.3f}" + ("" if control is None else f" ({control:.3f})"),
            "—" if retrieval is None else f"{retrieval:.1%}",
        ]

    for row in alignment["rows"]:
        lines.append("| " + " | ".join([row["label"], *(c for t in targets for c in cells(row, t))]) + " |")
    return lines


def compare_rows(rows: Sequence[Mapping[str, Any]], pair: Mapping[str, str]) -> dict[str, Any]:
    """UniBERT's summary of 'all' vs 'each': the mean relative improvement of the 'all' row's score
    over the 'each' row's, per target, and a paired t-test across the targets (as the paper tests
    across its entries). None while a cell is missing; the t-test needs at least two targets."""
    by_name = {row["name"]: row for row in rows}
    each, all_ = by_name[pair["each"]]["scores"], by_name[pair["all"]]["scores"]
    out = {"label": pair.get("label", f"{pair['all']} vs {pair['each']}"), "each": pair["each"]}
    out |= {"all": pair["all"], "relative_improvement": None, "t": None, "p_value": None, "n": 0}
    out["complete"] = False
    targets = list(each)
    if any(each.get(t) is None or all_.get(t) is None for t in targets):
        return out
    out["complete"] = True
    gains = [(all_[t] - each[t]) / each[t] for t in targets if each[t] > 0]  # undefined at 0
    out["n"] = len(gains)
    out["relative_improvement"] = sum(gains) / len(gains) if gains else None
    if len(targets) >= 2:
        from scipy.stats import ttest_rel

        result = ttest_rel([all_[t] for t in targets], [each[t] for t in targets])
        out["t_n"] = len(targets)  # every target, also those left out of the relative gain
        t, p = float(result.statistic), float(result.pvalue)
        # identical or constant differences make t infinite or undefined: report none rather than inf
        if math.isfinite(t) and math.isfinite(p):
            out["t"], out["p_value"] = t, p
    return out


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _f3(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def run_recipe(
    recipe: Recipe | str | os.PathLike[str],
    work: str | os.PathLike[str] | None = None,
    *,
    budget: str = "smoke",
    only: Sequence[str] | None = None,
    data_root: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> tuple[dict[str, Any], RecipeRunner]:
    """Run a recipe (object or path); returns (the table, the runner with its `events`)."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, budget, data_root)
    work = Path(work) if work is not None else Path("runs") / recipe.name / recipe.budget
    runner = RecipeRunner(recipe, work, progress=progress)
    return runner.run(only), runner
