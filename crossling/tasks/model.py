"""Task models: an `adapters` AdapterModel holding a LanguagePack's vocabulary and language adapter
(frozen), a task adapter and a flex head (tagging or classification).

The active setup is ``Stack(language, task)``; several task adapters of one LanguagePack can run in
one pass as ``Stack(language, Parallel(t1, ..., tn))`` (see `attach_task_adapter`), each head
receiving its own copy of the batch. Task adapters and heads are saved with
``save_adapter(dir, name, with_head=True)`` in safetensors.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from crossling.errors import ArtifactError, CrosslingError
from crossling.tasks.data import collate, encode_records, encode_sentences, prepare_tokenizer
from crossling.tasks.labels import is_tagging

logger = logging.getLogger(__name__)

FULL_MODEL_DIR = "model"  # where a finetune-mode TaskAdapter keeps its whole model


@dataclass
class PackModel:
    """An AdapterModel with a LanguagePack applied (or the bare base model)."""

    model: Any
    tokenizer: Any
    language: str | None  # the language adapter's name in the model; None without one
    base_identity: Any  # BaseModelIdentity of the base, before any surgery
    pack: Any | None = None


def _quiet_adapters() -> None:
    # "There are adapters available but none are activated" is logged on every forward of a model
    # whose setup we set explicitly; it is noise here.
    logging.getLogger("adapters.model_mixin").setLevel(logging.ERROR)


def load_adapter_model(source: str | os.PathLike[str]) -> tuple[Any, Any]:
    """`AutoAdapterModel` of `source` without heads, and the BaseModelIdentity of its encoder."""
    from adapters import AutoAdapterModel
    from transformers.utils import logging as hf_logging

    from crossling.artifacts import BaseModelIdentity

    _quiet_adapters()
    verbosity = hf_logging.get_verbosity()
    # "Some weights ... newly initialized": the pooler (unused) and the MLM head turned flex head
    # (deleted below); not something a user should act on.
    hf_logging.set_verbosity_error()
    try:
        model = AutoAdapterModel.from_pretrained(str(source))
    except (OSError, ValueError) as err:
        raise CrosslingError(f"cannot load base model {source!r}: {err}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    # A checkpoint with an MLM head arrives with that head as a flex head named "default".
    for name in list(model.heads):
        model.delete_head(name)
    return model, BaseModelIdentity.of(model)


def resolve_pack(pack: Any) -> Any:
    """A LanguagePack from a path (metadata only; the model loads later), or `pack` as it is."""
    from crossling.artifacts import LanguagePack

    if pack is None or isinstance(pack, LanguagePack):
        return pack
    return LanguagePack.from_pretrained(pack)


def build_pack_model(
    pack: Any | None,
    base: str | os.PathLike[str] | None = None,
    *,
    with_language_adapter: bool = True,
) -> PackModel:
    """Base model + the pack's vocabulary/embeddings (if it has its own) + its language adapter
    (invertible part included), all frozen. Without a pack: the base model and its tokenizer.

    `base` overrides where the base model is loaded from; a pack built on another base is refused.
    """
    from transformers import AutoTokenizer

    pack = resolve_pack(pack)
    if pack is None:
        if base is None:
            raise CrosslingError("pass a LanguagePack or a base model (--pack or --base)")
        source: Any = base
    else:
        source = base or pack.base_source or pack.base.name_or_path
        if not source:
            raise ArtifactError(f"LanguagePack {pack.path} does not record its base model: pass base=")
    model, identity = load_adapter_model(source)
    try:
        base_tokenizer = AutoTokenizer.from_pretrained(str(source))
    except (OSError, ValueError) as err:
        raise CrosslingError(f"cannot load the tokenizer of {source!r}: {err}") from None
    language = None
    tokenizer = base_tokenizer
    if pack is not None:
        pack.base.check_matches(identity, f"LanguagePack {pack.path}")
        tokenizer = pack.load_tokenizer(base_tokenizer)
        embeddings = pack.load_embeddings()
        if embeddings is not None:
            # Same surgery as crossling.language.build_adaptable_model, so the pack sees what it was
            # trained with.
            from crossling.language import replace_vocabulary

            replace_vocabulary(model, tokenizer, embeddings)
        if with_language_adapter:
            if pack.adapter_dir is None:
                raise ArtifactError(f"LanguagePack {pack.path} has no adapter/ directory")
            language = model.load_adapter(
                str(pack.adapter_dir), load_as=pack.language, with_head=False, use_safetensors=True
            )
    for param in model.parameters():
        param.requires_grad = False
    return PackModel(
        model=model,
        tokenizer=prepare_tokenizer(tokenizer),
        language=language,
        base_identity=identity,
        pack=pack,
    )


def model_max_tokens(model: Any, tokenizer: Any | None = None) -> int:
    """The longest sequence `model` can encode: its position embeddings (less RoBERTa's offset of
    padding_idx + 1), and the tokenizer's own limit when it states one."""
    limit = int(getattr(model.config, "max_position_embeddings", 0) or 10**9)
    embeddings = getattr(model.base_model, "embeddings", None)
    padding_idx = getattr(embeddings, "padding_idx", None)  # RoBERTa family: positions start after it
    if isinstance(padding_idx, int):
        limit -= padding_idx + 1
    stated = getattr(tokenizer, "model_max_length", None)
    if isinstance(stated, int) and 0 < stated < 10**6:
        limit = min(limit, stated)
    return limit


def task_adapter_config(reduction_factor: int) -> Any:
    """The task adapter's `adapters` config: MAD-X's bottleneck after the FFN ("pfeiffer"/SeqBn)."""
    from adapters import SeqBnConfig

    return SeqBnConfig(reduction_factor=reduction_factor)


def add_head(model: Any, name: str, task: str, labels: list[str]) -> None:
    """Tagging head (one linear layer per token) or classification head (MLP on the first token)."""
    id2label = dict(enumerate(labels))
    if is_tagging(task):
        model.add_tagging_head(name, num_labels=len(labels), layers=1, id2label=id2label)
    else:
        model.add_classification_head(
            name, num_labels=len(labels), layers=2, id2label=id2label, use_pooler=False
        )


def active_setup(language: str | None, name: str, mode: str) -> Any:
    from adapters.composition import Stack

    if mode == "finetune":
        return None
    return Stack(language, name) if language else name


@dataclass
class Prediction:
    """Predicted labels (word tag lists for tagging, one label per pair otherwise) and a report."""

    labels: list[Any]
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskModel:
    """A model ready to predict one task: AdapterModel + tokenizer + label map + active setup."""

    model: Any
    tokenizer: Any
    task: str
    labels: list[str]
    name: str  # task adapter and head name inside the model
    language: str | None  # language adapter name, None without one
    mode: str
    base_identity: Any = None
    task_adapter: Any = None  # the TaskAdapter it was loaded from, if any
    max_length: int = 128

    @property
    def setup(self) -> Any:
        return active_setup(self.language, self.name, self.mode)

    def activate(self) -> None:
        """Make this task's adapters and head the active ones (several TaskModels may share a model)."""
        if self.mode != "finetune":
            self.model.set_active_adapters(self.setup)
        self.model.active_head = self.name

    @property
    def fallback_label(self) -> str:
        """Tag given to words that lost all their subwords to truncation."""
        return "O" if "O" in self.labels else self.labels[0]

    @torch.no_grad()
    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        from crossling.training_utils import on_model_device

        self.activate()
        self.model.eval()
        return self.model(**on_model_device(batch, self.model)).logits.cpu()

    @torch.no_grad()
    def predict(
        self, records: list[dict[str, Any]], *, batch_size: int = 32, max_length: int | None = None
    ) -> Prediction:
        """Labels for `records` (tagging: ``{"tokens"}``; pairs: ``{"text_a", "text_b"}``).

        Sequences longer than `max_length` (default: the training setting; never more than the model
        can encode) are truncated and counted in the report; tagging fills words cut off that way
        with the fallback label ("O" for NER) and counts them too.
        """
        max_length = min(max_length or self.max_length, model_max_tokens(self.model, self.tokenizer))
        encoded = encode_records(self.task, self.tokenizer, records, None, max_length)
        features = encoded.features
        # Longest first, in length-sorted batches: far less padding on CPU; order restored below.
        order = sorted(range(len(features)), key=lambda i: -len(features[i]["input_ids"]))
        ids: list[Any] = [None] * len(features)
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            logits = self.logits(collate([features[i] for i in chunk], pad))
            best = logits.argmax(-1).tolist()
            for row, i in enumerate(chunk):
                ids[i] = best[row]
        report = {**encoded.report(), "max_length": max_length}
        if not is_tagging(self.task):
            return Prediction([self.labels[i] for i in ids], report)
        out, filled = [], 0
        for i, record in enumerate(records):
            tags: list[str | None] = [None] * len(record["tokens"])
            previous = None
            for position, word in enumerate(encoded.word_ids[i]):
                if word is not None and word != previous:
                    tags[word] = self.labels[ids[i][position]]
                previous = word
            filled += sum(1 for t in tags if t is None)
            out.append([t if t is not None else self.fallback_label for t in tags])
        report["words_filled_with_fallback"] = filled
        return Prediction(out, report)

    def encode(
        self, sentences: list[Any], *, batch_size: int = 32, max_length: int | None = None
    ) -> torch.Tensor:
        """Mean-pooled final hidden states with this task's setup active: [n, hidden]."""
        self.activate()
        return encode_pooled(
            self.model,
            self.tokenizer,
            sentences,
            batch_size=batch_size,
            max_length=max_length or self.max_length,
        )


@torch.no_grad()
def encode_pooled(
    model: Any, tokenizer: Any, sentences: list[Any], *, batch_size: int = 32, max_length: int = 128
) -> torch.Tensor:
    """Mean-pooled final hidden states of `sentences` (strings or word lists) with the model's
    currently active adapters: [n, hidden]."""
    from crossling.language import mean_pool
    from crossling.training_utils import on_model_device

    model.eval()
    encoded = encode_sentences(tokenizer, sentences, min(max_length, model_max_tokens(model, tokenizer)))
    order = sorted(range(len(encoded.features)), key=lambda i: -len(encoded.features[i]["input_ids"]))
    out = torch.empty(len(order), model.config.hidden_size)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = on_model_device(collate([encoded.features[i] for i in chunk], tokenizer.pad_token_id), model)
        hidden = model.base_model(**batch).last_hidden_state
        out[chunk] = mean_pool(hidden, batch["attention_mask"]).float().cpu()
    return out


def _resolve_task_adapter(task_adapter: Any) -> Any:
    from crossling.artifacts import TaskAdapter

    if isinstance(task_adapter, TaskAdapter):
        return task_adapter
    return TaskAdapter.from_pretrained(task_adapter)


def attach_task_adapter(model: Any, task_adapter: Any, name: str | None = None) -> str:
    """Load a saved task adapter + head into `model` (an AdapterModel with the right language adapter)
    under `name` (default: its own); returns the name. For ``Stack(lang, Parallel(...))`` setups."""
    ta = _resolve_task_adapter(task_adapter)
    if ta.config.get("mode") == "finetune":
        raise ArtifactError(f"{ta.path} is a fully fine-tuned model, not an adapter; it cannot be attached")
    name = name or ta.config.get("adapter_name") or f"{ta.task}_{ta.source_language}"
    loaded = model.load_adapter(str(ta.path / "adapter"), load_as=name, with_head=True, use_safetensors=True)
    id2label = model.get_labels_dict(loaded) or {}
    head_labels = [id2label[i] for i in sorted(id2label, key=int)]
    if head_labels and head_labels != list(ta.labels):
        raise ArtifactError(
            f"{ta.path}: the head's labels {head_labels} differ from its crossling.json label map {ta.labels}"
        )
    return loaded


def load_task_model(
    task_adapter: Any,
    pack: Any | None = None,
    *,
    base: str | os.PathLike[str] | None = None,
    name: str | None = None,
    max_length: int | None = None,
) -> TaskModel:
    """A TaskModel from a saved TaskAdapter, applied with `pack`'s vocabulary and language adapter.

    `pack` is the LanguagePack of the language to predict for (zero-shot: the target's); it defaults
    to the pack the adapter was trained on. Fine-tuned (``finetune`` mode) adapters carry their whole
    model and need no pack.
    """
    from transformers import AutoTokenizer

    ta = _resolve_task_adapter(task_adapter)
    mode = ta.config.get("mode", "adapter")
    max_length = max_length or int(ta.config.get("training", {}).get("max_length", 128))
    pack = resolve_pack(pack)
    if mode == "finetune":
        from adapters import AutoAdapterModel

        _quiet_adapters()
        if pack is not None:
            if pack.has_own_vocabulary:
                raise ArtifactError(
                    f"{ta.path} is a fine-tuned model with its own embeddings; LanguagePack {pack.path} "
                    "has another vocabulary and cannot be applied to it"
                )
            logger.info("fine-tuned model: the language adapter of %s is not used", pack.path)
        model = AutoAdapterModel.from_pretrained(str(ta.path / FULL_MODEL_DIR))
        tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(str(ta.path / FULL_MODEL_DIR)))
        head = ta.config.get("adapter_name") or ta.task
        task_model = TaskModel(
            model, tokenizer, ta.task, list(ta.labels), head, None, mode, ta.base, ta, max_length
        )
        task_model.model.eval()
        return task_model
    if pack is None:
        if not ta.language_pack or not Path(ta.language_pack).is_dir():
            raise ArtifactError(
                f"{ta.path} was trained on LanguagePack {ta.language_pack or '(none recorded)'}, which is "
                "not available: pass the LanguagePack of the language to predict for"
            )
        pack = resolve_pack(ta.language_pack)
    ta.base.check_matches(pack.base, f"TaskAdapter {ta.path} (with LanguagePack {pack.path})")
    packed = build_pack_model(pack, base)
    loaded = attach_task_adapter(packed.model, ta, name)
    task_model = TaskModel(
        packed.model,
        packed.tokenizer,
        ta.task,
        list(ta.labels),
        loaded,
        packed.language,
        mode,
        packed.base_identity,
        ta,
        max_length,
    )
    task_model.activate()
    task_model.model.eval()
    return task_model
