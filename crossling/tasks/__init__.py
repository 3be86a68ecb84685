"""Task adapters (UniBridge / MAD-X task stage), their baselines, and language-adversarial training.

    from crossling.tasks import train_task, load_task_model
    adapter = train_task("ner", "train-en.tsv", "task/ner-en", dev="dev-en.tsv", pack="packs/en")
    model = load_task_model("task/ner-en", pack="packs/de")        # zero-shot: the target's pack
    model.predict([{"tokens": ["Angela", "Merkel", "sprach", "."]}]).labels

Several task adapters of one pack in one pass (the multi-source predictor)::

    packed = build_pack_model("packs/de")
    names = [attach_task_adapter(packed.model, path, f"t{i}") for i, path in enumerate(paths)]
    packed.model.set_active_adapters(Stack(packed.language, Parallel(*names)))
    packed.model.active_head = Parallel(*names)    # -> one head output per adapter
"""

from __future__ import annotations

from crossling.tasks.data import (
    Encoded,
    collate,
    encode_pairs,
    encode_records,
    encode_sentences,
    encode_tagging,
    read_task_data,
)
from crossling.tasks.labels import (
    PAIR_TASKS,
    TAGGING_TASKS,
    TASKS,
    build_label_map,
    check_iob2,
    check_known_labels,
    order_labels,
)
from crossling.tasks.model import (
    PackModel,
    Prediction,
    TaskModel,
    attach_task_adapter,
    build_pack_model,
    encode_pooled,
    load_task_model,
    model_max_tokens,
    resolve_pack,
)
from crossling.tasks.training import TaskTrainingModule, train_task

__all__ = [
    "PAIR_TASKS",
    "TAGGING_TASKS",
    "TASKS",
    "Encoded",
    "PackModel",
    "Prediction",
    "TaskModel",
    "TaskTrainingModule",
    "attach_task_adapter",
    "build_label_map",
    "build_pack_model",
    "check_iob2",
    "check_known_labels",
    "collate",
    "encode_pairs",
    "encode_pooled",
    "encode_records",
    "encode_sentences",
    "encode_tagging",
    "load_task_model",
    "model_max_tokens",
    "order_labels",
    "read_task_data",
    "resolve_pack",
    "train_task",
]
