"""Offline task metrics: seqeval entity F1 for NER, accuracy for POS and sentence-pair tasks.

NER uses `seqeval.metrics` directly (micro-averaged entity precision/recall/F1 in seqeval's default
mode, which is conlleval's: a chunk starts at B-X, or at I-X after O or another type), never
`evaluate.load("seqeval")`, which fetches a script from the hub. POS is token accuracy over words
(as XTREME reports it); NLI and paraphrase are accuracy over pairs. Scores are fractions in [0, 1].
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from crossling.errors import CrosslingError

PRIMARY_METRIC = {"ner": "f1", "pos": "accuracy", "nli": "accuracy", "paraphrase": "accuracy"}


def _check_lengths(gold: Sequence[Any], pred: Sequence[Any]) -> None:
    if len(gold) != len(pred):
        raise CrosslingError(f"{len(gold)} gold items but {len(pred)} predictions")
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if isinstance(g, (list, tuple)) and len(g) != len(p):
            raise CrosslingError(f"sentence {i + 1}: {len(g)} gold tags but {len(p)} predicted")


def entity_f1(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Micro entity precision/recall/F1 (seqeval default mode, IOB2) and per-type scores."""
    from seqeval.metrics import classification_report

    _check_lengths(gold, pred)
    with warnings.catch_warnings():
        # seqeval's macro/weighted averages over zero entity types warn ("Mean of empty slice");
        # the micro scores we report are 0 then, as zero_division says
        warnings.simplefilter("ignore", RuntimeWarning)
        report = classification_report(
            [list(s) for s in gold], [list(s) for s in pred], output_dict=True, zero_division=0
        )
    micro = report.pop("micro avg")
    for key in ("macro avg", "weighted avg"):
        report.pop(key, None)
    return {
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "f1": float(micro["f1-score"]),
        "entities": int(micro["support"]),
        "per_type": {
            kind: {
                "precision": float(v["precision"]),
                "recall": float(v["recall"]),
                "f1": float(v["f1-score"]),
                "support": int(v["support"]),
            }
            for kind, v in sorted(report.items())
        },
    }


def token_accuracy(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Fraction of words whose predicted tag equals the gold tag."""
    _check_lengths(gold, pred)
    total = sum(len(s) for s in gold)
    right = sum(g == p for gs, ps in zip(gold, pred, strict=True) for g, p in zip(gs, ps, strict=True))
    return {"accuracy": right / total if total else 0.0, "tokens": total}


def accuracy(gold: Sequence[str], pred: Sequence[str]) -> dict[str, Any]:
    """Fraction of items whose predicted label equals the gold label."""
    _check_lengths(gold, pred)
    right = sum(g == p for g, p in zip(gold, pred, strict=True))
    return {"accuracy": right / len(gold) if gold else 0.0, "examples": len(gold)}


def task_metrics(task: str, gold: Sequence[Any], pred: Sequence[Any]) -> dict[str, Any]:
    """The metrics of `task` on gold vs predicted labels (word tag lists for tagging tasks)."""
    if task == "ner":
        return entity_f1(gold, pred)
    if task == "pos":
        return token_accuracy(gold, pred)
    if task in ("nli", "paraphrase"):
        return accuracy(gold, pred)
    raise CrosslingError(f"no metric for task {task!r}")
