"""Evaluation: offline task metrics, per-language reports, and cross-lingual alignment analysis.

from crossling.eval import evaluate
report = evaluate("task/ner-en", {"de": "dev-de.tsv"}, pack="packs/de")
report.save("results/ner-en")   # results/ner-en.json + results/ner-en.md
"""

from __future__ import annotations

from crossling.eval.alignment import (
    alignment_markdown,
    analyze_alignment,
    cosine_summary,
    parallel_alignment,
    read_parallel_text,
    read_xnli_parallel,
)
from crossling.eval.metrics import PRIMARY_METRIC, accuracy, entity_f1, task_metrics, token_accuracy
from crossling.eval.runner import EvaluationReport, evaluate

__all__ = [
    "PRIMARY_METRIC",
    "EvaluationReport",
    "accuracy",
    "alignment_markdown",
    "analyze_alignment",
    "cosine_summary",
    "entity_f1",
    "evaluate",
    "parallel_alignment",
    "read_parallel_text",
    "read_xnli_parallel",
    "task_metrics",
    "token_accuracy",
]
