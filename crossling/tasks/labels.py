"""Label maps of task adapters: which labels exist, in which id order, and what is refused.

A label map is a list of label names in id order, stored in the TaskAdapter's crossling.json. It is
built from the training data only; development and evaluation data may not bring labels of their
own (a tag the head never saw cannot be predicted, and silently dropping it would inflate scores).
The one exception is POS with Universal Dependencies tags: that inventory is closed (17 UPOS tags),
so a POS adapter whose training tags are all UPOS gets all 17. Adapters trained on different
treebanks then share one label map (multi-source inference needs that), and a target tag the source
treebank lacks is a scorable error rather than a refused file.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from crossling.data.conll import UPOS_TAGS
from crossling.errors import DataFormatError

TAGGING_TASKS = ("ner", "pos")
PAIR_TASKS = ("nli", "paraphrase")
TASKS = TAGGING_TASKS + PAIR_TASKS

# Conventional orders, so that two adapters trained on different files get the same ids.
NLI_ORDER = ("entailment", "neutral", "contradiction")
PARAPHRASE_ORDER = ("0", "1")


def is_tagging(task: str) -> bool:
    return task in TAGGING_TASKS


def _record_labels(task: str, record: dict[str, Any]) -> list[str]:
    return list(record["tags"]) if is_tagging(task) else [record["label"]]


def label_counts(task: str, records: Iterable[dict[str, Any]]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for record in records:
        counts.update(_record_labels(task, record))
    return counts


def _ner_key(label: str) -> tuple[int, str, int]:
    if label == "O":
        return (0, "", 0)
    prefix, _, kind = label.partition("-")
    return (1, kind, {"B": 0, "I": 1, "E": 2, "S": 3}.get(prefix, 4))


def order_labels(task: str, labels: Iterable[str]) -> list[str]:
    """Canonical id order: NER "O" first then B-/I- per entity type; NLI/paraphrase the usual order
    (labels outside it go after, sorted); POS alphabetical."""
    found = set(labels)
    if task == "ner":
        return sorted(found, key=_ner_key)
    if task in PAIR_TASKS:
        canonical = NLI_ORDER if task == "nli" else PARAPHRASE_ORDER
        return [x for x in canonical if x in found] + sorted(found - set(canonical))
    return sorted(found)


def build_label_map(
    task: str,
    train: Sequence[dict[str, Any]],
    dev: Sequence[dict[str, Any]] | None = None,
    *,
    train_name: str = "the training data",
    dev_name: str = "the development data",
) -> list[str]:
    """Label names in id order from `train`; refuse `dev` labels that `train` does not have."""
    labels = order_labels(task, label_counts(task, train))
    if not labels:
        raise DataFormatError(train_name, None, "no labels found in the training data")
    if task == "pos" and set(labels) <= UPOS_TAGS:
        labels = sorted(UPOS_TAGS)
    elif task == "pos" and len(set(labels) & UPOS_TAGS) > len(labels) / 2:
        # mostly UPOS with a few strays: likely typos, and they cost the shared 17-tag label map that
        # lets adapters trained on other treebanks be combined
        strays = sorted(set(labels) - UPOS_TAGS)
        logging.getLogger(__name__).warning(
            "%s: tag(s) %s are not Universal POS tags, so the label map is this file's own, not the "
            "shared 17-tag one (other POS adapters will not combine with this one); fix or map them",
            train_name,
            ", ".join(repr(s) for s in strays),
        )
    if dev is not None:
        check_known_labels(task, dev, labels, source=dev_name, against=train_name)
    return labels


def check_known_labels(
    task: str,
    records: Iterable[dict[str, Any]],
    labels: Sequence[str],
    *,
    source: str,
    against: str = "the task adapter's label map",
) -> None:
    """Raise DataFormatError naming every label of `records` that is not in `labels` (with counts)."""
    known = set(labels)
    unknown = {label: n for label, n in label_counts(task, records).items() if label not in known}
    if unknown:
        listed = ", ".join(f"{label!r} ({n}x)" for label, n in sorted(unknown.items()))
        raise DataFormatError(
            source,
            None,
            f"label(s) not in {against}: {listed}. Known labels: {', '.join(labels)}. "
            "Train on data that has them, or map them to known labels first.",
        )


def check_iob2(records: Iterable[dict[str, Any]], *, source: str) -> None:
    """Every tag is O, B-X or I-X, and I-X only continues a B-X/I-X of the same type.

    Raises DataFormatError naming the sentence (1-based), token and tags. IOB1 files (CoNLL-2002's
    originals, a few stray I- tags in PAN-X zh) pass after `iob1_to_iob2` (`to_iob2=True`): for
    seqeval's default (conlleval) mode that conversion does not change any gold chunk.
    """
    for number, record in enumerate(records, 1):
        previous = "O"
        for position, tag in enumerate(record["tags"]):
            prefix, dash, kind = tag.partition("-")
            if tag != "O" and not (prefix in ("B", "I") and dash and kind):
                raise DataFormatError(
                    source,
                    None,
                    f"sentence {number}, token {position + 1} ({record['tokens'][position]!r}): tag "
                    f"{tag!r} is not IOB2 (expected O, B-TYPE or I-TYPE)",
                )
            if prefix == "I" and (previous == "O" or previous.partition("-")[2] != kind):
                raise DataFormatError(
                    source,
                    None,
                    f"sentence {number}, token {position + 1} ({record['tokens'][position]!r}): {tag!r} "
                    f"follows {previous!r}, which IOB2 does not allow (an entity starts with B-). "
                    "The file looks like IOB1: pass to_iob2=True (CLI: --to-iob2) to convert it.",
                )
            previous = tag
