"""`evaluate`: a task adapter on labelled data of one or more languages, with per-language tables.

Gold labels the task adapter does not know are refused (naming them) instead of being scored as
errors or dropped; truncation is reported per language; the report is written as JSON and Markdown.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from crossling.errors import ConfigError, DataFormatError
from crossling.eval.metrics import PRIMARY_METRIC, task_metrics

DataSpec = str | os.PathLike[str] | Sequence[dict[str, Any]]


@dataclasses.dataclass
class EvaluationReport:
    """Scores per language (fractions in [0, 1]) and the settings that produced them."""

    task: str
    metric: str
    results: dict[str, dict[str, Any]]
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def average(self) -> float | None:
        values = [r[self.metric] for r in self.results.values()]
        return sum(values) / len(values) if values else None

    def to_markdown(self) -> str:
        ner = self.task == "ner"
        head = ["language", "precision", "recall", "F1"] if ner else ["language", "accuracy"]
        head += ["examples", "truncated"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for lang, r in self.results.items():
            scores = [r["precision"], r["recall"], r["f1"]] if ner else [r["accuracy"]]
            row = [
                lang,
                *(f"{100 * s:.1f}" for s in scores),
                str(r["examples"]),
                str(r["truncation"]["truncated"]),
            ]
            lines.append("| " + " | ".join(row) + " |")
        if len(self.results) > 1:
            pad = ["", ""] if ner else []
            lines.append("| average | " + " | ".join([*pad, f"{100 * self.average:.1f}", "", ""]) + " |")
        adapter = self.settings.get("task_adapter", "")
        title = f"{self.task} ({'entity F1, seqeval default mode' if ner else 'accuracy'}, %) — {adapter}"
        return f"### {title}\n\n" + "\n".join(lines) + "\n"

    def save(self, path: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write `PATH.json` and `PATH.md` (a .json/.md suffix on `path` is replaced)."""
        from crossling.artifacts import write_json_atomic, write_text_atomic

        path = Path(path)
        stem = path.with_suffix("") if path.suffix in (".json", ".md") else path
        json_path, md_path = stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".md")
        write_json_atomic(json_path, self.to_dict())
        write_text_atomic(md_path, self.to_markdown())
        return json_path, md_path


def _mapped(task: str, records: list[dict[str, Any]], mapping: Mapping[str, str], source: str) -> list:
    """`records` with gold labels renamed by `mapping`; NER tags are checked for IOB2 again."""
    from crossling.tasks.labels import check_iob2, is_tagging

    if is_tagging(task):
        out = [{**r, "tags": [mapping.get(t, t) for t in r["tags"]]} for r in records]
        if task == "ner":
            check_iob2(out, source=f"{source} (after mapping labels)")
        return out
    return [{**r, "label": mapping.get(r["label"], r["label"])} for r in records]


def _as_mapping(value: Any, default_key: str | None) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    if default_key is None:
        raise ConfigError("name the language of the data (lang=PATH, or --lang)")
    return {default_key: value}


def evaluate(
    task_adapter: Any,
    data: DataSpec | Mapping[str, DataSpec],
    *,
    pack: Any | Mapping[str, Any] | None = None,
    base: str | os.PathLike[str] | None = None,
    task: str | None = None,
    language: str | None = None,
    batch_size: int = 32,
    max_length: int | None = None,
    to_iob2: bool = False,
    encoding: str = "utf-8",
    limit: int | None = None,
    map_labels: Mapping[str, str] | None = None,
) -> EvaluationReport:
    """Evaluate `task_adapter` (a path or TaskAdapter) on `data` ({lang: file or records}, or one
    file with `language`). `pack` is the LanguagePack to predict with — one for all languages, or
    {lang: pack}; absent, the pack the adapter was trained on. `limit` keeps the first N examples.
    `encoding` is the data files' codec ("auto": UTF-8, else Latin-1). `map_labels` renames gold labels
    before scoring, e.g. ``{"B-MISC": "O", "I-MISC": "O"}`` for a
    target whose data has a type the source data lacks (the mapping is recorded in the report).
    """
    from crossling.artifacts import TaskAdapter
    from crossling.tasks.data import read_task_data
    from crossling.tasks.labels import check_iob2, check_known_labels
    from crossling.tasks.model import load_task_model

    ta = task_adapter if isinstance(task_adapter, TaskAdapter) else TaskAdapter.from_pretrained(task_adapter)
    if task is not None and task != ta.task:
        raise ConfigError(f"--task {task} but {ta.path} is a {ta.task} adapter")
    task = ta.task
    datasets = _as_mapping(data, language)
    packs = dict(pack) if isinstance(pack, Mapping) else {lang: pack for lang in datasets}
    missing = sorted(set(datasets) - set(packs))
    if missing:
        raise ConfigError(f"no LanguagePack given for language(s) {', '.join(missing)}")

    models: dict[str, Any] = {}
    results: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    for lang, spec in datasets.items():
        if isinstance(spec, (str, os.PathLike)):
            records, source = read_task_data(task, spec, to_iob2=to_iob2, encoding=encoding), str(spec)
        else:
            records, source = list(spec), f"records for {lang}"
            if task == "ner":
                check_iob2(records, source=source)
        if limit is not None:
            records = records[:limit]
        if not records:
            raise DataFormatError(source, None, "no examples to evaluate")
        if map_labels:
            records = _mapped(task, records, map_labels, source)
        check_known_labels(task, records, ta.labels, source=source, against=f"the label map of {ta.path}")
        key = str(getattr(packs[lang], "path", packs[lang]))
        if key not in models:
            models[key] = load_task_model(ta, packs[lang], base=base, max_length=max_length)
        task_model = models[key]
        t0 = time.perf_counter()
        prediction = task_model.predict(records, batch_size=batch_size)
        gold = [r["tags"] if "tags" in r else r["label"] for r in records]
        results[lang] = {
            **task_metrics(task, gold, prediction.labels),
            "examples": len(records),
            "data": source,
            "pack": key if packs[lang] is not None else None,
            "truncation": prediction.report,
            "seconds": round(time.perf_counter() - t0, 2),
        }
    return EvaluationReport(
        task=task,
        metric=PRIMARY_METRIC[task],
        results=results,
        settings={
            "task_adapter": str(ta.path),
            "source_language": ta.source_language,
            "mode": ta.config.get("mode"),
            "adversarial": (ta.config.get("task_adapter") or {}).get("adversarial"),
            "batch_size": batch_size,
            "max_length": max_length or (ta.config.get("training") or {}).get("max_length"),
            "to_iob2": to_iob2,
            "limit": limit,
            "map_labels": dict(map_labels) if map_labels else None,
            "seconds": round(time.perf_counter() - started, 2),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": platform.platform(),
        },
    )
