"""Training a task adapter (or a fully fine-tuned baseline) on one source language.

Runs on `transformers.Trainer` (so `torchrun --nproc_per_node N` gives data parallelism), with:
checkpoints of the trainable parameters only (adapter + head + discriminator, in safetensors; the
frozen base is never copied), `resume=True` picking up the last checkpoint exactly (optimiser,
scheduler, RNG, data order, and Keung's two extra optimisers), the best checkpoint on the source
dev set kept at the end, and a clear stop — with the last good checkpoint named — when a loss
becomes NaN or infinite (weights that turned NaN are never written as a checkpoint). A fresh run
refuses to start over the checkpoints of an earlier one: resume it, or delete them. Sequences longer
than the model can encode are truncated (and counted), whatever `max_length` asks for.

Modes: ``adapter`` (UniBridge: task adapter on ``Stack(language adapter, task)``), ``madx`` (the same
with MAD-X's plain settings pinned: SeqBn bottleneck, reduction 16), ``finetune`` (every weight of the
base is trained — the zero-shot "mBERT/XLM-R" rows of the papers; saved as a full model). A
LanguagePack with its own vocabulary contributes its tokenizer and embeddings in every mode; its
language adapter is used in the adapter modes only.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from crossling.adversarial import (
    AdversarialData,
    DivergenceError,
    LanguageDiscriminator,
    grl_objective,
    keung_updates,
    loss_reversal_objective,
)
from crossling.config import TaskAdapterConfig, TrainingConfig
from crossling.errors import ConfigError, CrosslingError
from crossling.tasks.data import (
    Records,
    collate,
    encode_records,
    encode_sentences,
    read_task_data,
    read_unlabelled,
    record_sentences,
)
from crossling.tasks.labels import build_label_map
from crossling.tasks.model import (
    FULL_MODEL_DIR,
    TaskModel,
    active_setup,
    add_head,
    build_pack_model,
    model_max_tokens,
    resolve_pack,
    task_adapter_config,
)
from crossling.training_utils import (
    LossPartsLoggingMixin,
    adamw,
    autocast,
    last_checkpoint,
    training_arguments,
)

logger = logging.getLogger(__name__)

TRAINABLE_FILE = "crossling_trainable.safetensors"
ADV_OPTIMIZERS_FILE = "adversarial_optimizers.pt"
UNLABELLED_LIMIT = 20000  # sentences per language kept for the discriminator


class TaskTrainingModule(nn.Module):
    """The AdapterModel plus the (optional) language discriminator, as one module for the Trainer.

    `forward` returns the task loss, plus for ``grl``/``loss-reversal`` the adversarial term on the
    discriminator batch passed as ``adv_*`` tensors (one forward, so DDP sees one graph).
    """

    def __init__(
        self,
        model: nn.Module,
        discriminator: nn.Module | None = None,
        adversarial: str = "none",
        weight: float = 0.1,
    ) -> None:
        super().__init__()
        self.model = model
        self.discriminator = discriminator
        self.adversarial = adversarial
        self.weight = weight

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        from crossling.language import mean_pool

        hidden = self.model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(hidden, attention_mask)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        adv_input_ids: torch.Tensor | None = None,
        adv_attention_mask: torch.Tensor | None = None,
        adv_labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **extra)
        result = {"loss": out.loss, "logits": out.logits, "task_loss": out.loss.detach()}
        if adv_input_ids is not None and self.adversarial in ("grl", "loss-reversal"):
            features = self.pooled(adv_input_ids, adv_attention_mask)
            objective = grl_objective if self.adversarial == "grl" else loss_reversal_objective
            term, d_loss = objective(self.discriminator, features, adv_labels, self.weight)
            result["loss"] = out.loss + term
            result["disc_loss"] = d_loss.detach()
        return result


def _trainable_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().contiguous() for n, p in module.named_parameters() if p.requires_grad}


def _load_trainable_state(module: nn.Module, checkpoint: str | os.PathLike[str]) -> None:
    from safetensors.torch import load_file

    path = Path(checkpoint) / TRAINABLE_FILE
    if not path.is_file():
        raise CrosslingError(
            f"checkpoint {checkpoint} has no {TRAINABLE_FILE}: not a crossling train-task checkpoint"
        )
    state = load_file(path)
    expected = {n for n, p in module.named_parameters() if p.requires_grad}
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise CrosslingError(
            f"checkpoint {checkpoint} does not match this run (different mode, task or adversarial "
            f"setting?): missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {extra[:3]}{'...' if len(extra) > 3 else ''}"
        )
    module.load_state_dict(state, strict=False)


def _trainer_class() -> type:
    from transformers import Trainer, TrainerCallback

    class EvaluateAtEnd(TrainerCallback):
        """Evaluate and checkpoint the final step too, so it can be chosen as the best."""

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps and args.eval_strategy != "no":
                control.should_evaluate = True
                control.should_save = True
            return control

    class TaskTrainer(LossPartsLoggingMixin, Trainer):
        log_tokens_per_second = False
        divergence_message = (
            "training diverged at step {step}: {what}. Last good checkpoint: {last}. "
            "Lower the learning rate(s) and rerun with --resume."
        )
        nonfinite_loss_message = "the training loss is {loss}"

        def __init__(
            self,
            *args: Any,
            task_model: TaskModel,
            dev_records: Records | None,
            adv_data: AdversarialData | None,
            adversarial: str,
            task_config: TaskAdapterConfig,
            generator_params: list[nn.Parameter],
            **kwargs: Any,
        ) -> None:
            super().__init__(*args, **kwargs)
            self.add_callback(EvaluateAtEnd())
            self.task_model = task_model
            self.dev_records = dev_records
            self.adv_data = adv_data
            self.adversarial = adversarial
            self.task_config = task_config
            self.generator_params = generator_params
            self._micro = 0
            self.adv_optimizers: dict[str, torch.optim.Optimizer] = {}
            if adversarial == "keung":
                # Plain Adam steps (no weight decay): each update follows its own loss only.
                self.adv_optimizers = {
                    "discriminator": adamw(
                        self.model.discriminator.parameters(),
                        lr=task_config.adv_discriminator_lr,
                        weight_decay=0.0,
                    ),
                    "generator": adamw(
                        generator_params,
                        lr=task_config.generator_lr(self.args.learning_rate),
                        weight_decay=0.0,
                    ),
                }

        # -------------------------------------------------------------- optimisation
        def create_optimizer(self):
            if self.optimizer is None:
                module = self.model
                task_params = [
                    p
                    for n, p in module.named_parameters()
                    if p.requires_grad and not n.startswith("discriminator.")
                ]
                groups = [{"params": task_params, "weight_decay": self.args.weight_decay}]
                if module.discriminator is not None and self.adversarial != "keung":
                    groups.append(
                        {
                            "params": list(module.discriminator.parameters()),
                            "weight_decay": 0.0,
                            "lr": self.task_config.adv_discriminator_lr,
                        }
                    )
                self.optimizer = adamw(groups, lr=self.args.learning_rate)
            return self.optimizer

        def _adv_batch(self) -> dict[str, torch.Tensor]:
            # a pure function of (step, micro-batch, process): resumed runs draw the same batches, and
            # data-parallel processes draw different ones
            accumulation = self.args.gradient_accumulation_steps
            micro = self.state.global_step * accumulation + self._micro % accumulation
            key = micro * self.args.world_size + self.args.process_index
            self._micro += 1
            features, languages = self.adv_data.batch(key)
            batch = collate(features, self.task_model.tokenizer.pad_token_id)
            device = self.args.device
            return {
                "adv_input_ids": batch["input_ids"].to(device),
                "adv_attention_mask": batch["attention_mask"].to(device),
                "adv_labels": languages.to(device),
            }

        def training_step(self, model, inputs, num_items_in_batch=None):
            if self.adversarial == "keung":
                # Algorithm 1, steps 1-2 (discriminator, generator), before the task update below.
                adv = self._adv_batch()
                module = self.model
                module.train()
                try:
                    parts = keung_updates(
                        lambda b: self._pooled(module, b),
                        module.discriminator,
                        self.generator_params,
                        self.adv_optimizers["discriminator"],
                        self.adv_optimizers["generator"],
                        adv,
                        adv["adv_labels"],
                        self.args.max_grad_norm,
                    )
                except DivergenceError as err:
                    self.diverged(str(err))
                self.record_loss_parts(parts)
            return super().training_step(model, inputs, num_items_in_batch)

        def _pooled(self, module, batch):
            # Keung's own steps run outside Trainer's autocast: the same precision, fp32 features out
            with autocast("bf16" if self.args.bf16 else "fp32", self.args.device):
                pooled = module.pooled(batch["adv_input_ids"], batch["adv_attention_mask"])
            return pooled.float()

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.adversarial in ("grl", "loss-reversal") and model.training:
                inputs = {**inputs, **self._adv_batch()}
            outputs = model(**inputs)
            loss = outputs["loss"]
            self.check_finite_loss(loss)
            self.record_loss_parts({k: float(outputs[k]) for k in ("task_loss", "disc_loss") if k in outputs})
            return (loss, outputs) if return_outputs else loss

        # -------------------------------------------------------------- evaluation on the source dev set
        def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
            from crossling.eval.metrics import task_metrics

            if not self.dev_records:
                return {}
            started = time.perf_counter()
            prediction = self.task_model.predict(
                self.dev_records, batch_size=self.args.per_device_eval_batch_size
            )
            gold = [r["tags"] if "tags" in r else r["label"] for r in self.dev_records]
            scores = task_metrics(self.task_model.task, gold, prediction.labels)
            metrics = {
                f"{metric_key_prefix}_{k}": v for k, v in scores.items() if isinstance(v, (int, float))
            }
            metrics[f"{metric_key_prefix}_runtime"] = round(time.perf_counter() - started, 2)
            self.model.train()
            self.log(metrics)
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
            return metrics

        # -------------------------------------------------------------- checkpoints: trainable weights only
        def _save_checkpoint(self, model, trial):
            # A NaN gradient with a finite loss poisons the weights one step before the loss shows it:
            # never write such weights as a checkpoint that --resume would then pick up.
            bad = [n for n, p in self.model.named_parameters() if p.requires_grad and not p.isfinite().all()]
            if bad:
                self.diverged(f"{len(bad)} trainable tensors hold NaN/inf (first: {bad[0]})")
            return super()._save_checkpoint(model, trial)

        def _save(self, output_dir: str | None = None, state_dict=None) -> None:
            from safetensors.torch import save_file

            output_dir = output_dir or self.args.output_dir
            os.makedirs(output_dir, exist_ok=True)
            save_file(_trainable_state(self.model), os.path.join(output_dir, TRAINABLE_FILE))

        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            _load_trainable_state(model or self.model, resume_from_checkpoint)

        def _load_best_model(self):
            logger.info(
                "loading the best checkpoint %s (dev %s %.4f)",
                self.state.best_model_checkpoint,
                self.args.metric_for_best_model,
                self.state.best_metric,
            )
            _load_trainable_state(self.model, self.state.best_model_checkpoint)

        def _save_optimizer_and_scheduler(self, output_dir):
            super()._save_optimizer_and_scheduler(output_dir)
            if self.adv_optimizers and self.args.should_save:
                torch.save(
                    {k: opt.state_dict() for k, opt in self.adv_optimizers.items()},
                    os.path.join(output_dir, ADV_OPTIMIZERS_FILE),
                )

        def _load_optimizer_and_scheduler(self, checkpoint):
            super()._load_optimizer_and_scheduler(checkpoint)
            path = os.path.join(checkpoint, ADV_OPTIMIZERS_FILE) if checkpoint else None
            if path and self.adv_optimizers and os.path.isfile(path):
                states = torch.load(path, map_location="cpu", weights_only=True)
                for key, opt in self.adv_optimizers.items():
                    opt.load_state_dict(states[key])

    return TaskTrainer


def _load_records(
    task: str, data: Any, to_iob2: bool, what: str, encoding: str = "utf-8"
) -> tuple[Records, str]:
    if isinstance(data, (str, os.PathLike)):
        return read_task_data(task, data, to_iob2=to_iob2, encoding=encoding), str(data)
    records = list(data)
    if task == "ner":
        from crossling.tasks.labels import check_iob2

        check_iob2(records, source=what)
    return records, what


def _unlabelled_sentences(task: str, source: Any) -> list[Any]:
    lines = (
        read_unlabelled(source, limit=UNLABELLED_LIMIT)
        if isinstance(source, (str, os.PathLike))
        else list(source)
    )
    # Tagging data reaches the model as pre-split words; give the discriminator the same form so it
    # cannot tell the source from the rest by tokenisation alone.
    return [line.split() for line in lines if line.split()] if task in ("ner", "pos") else lines


def _adversarial_rates(config: TaskAdapterConfig, training: TrainingConfig) -> dict[str, float]:
    rates = {"task": training.learning_rate, "discriminator": config.adv_discriminator_lr}
    if config.adversarial == "keung":
        rates["generator"] = config.generator_lr(training.learning_rate)
    return rates


def train_task(
    task: str,
    train: str | os.PathLike[str] | Sequence[dict[str, Any]],
    out: str | os.PathLike[str],
    *,
    dev: str | os.PathLike[str] | Sequence[dict[str, Any]] | None = None,
    pack: Any | None = None,
    base: str | os.PathLike[str] | None = None,
    language: str | None = None,
    config: TaskAdapterConfig | Mapping[str, Any] | str | None = None,
    training: TrainingConfig | Mapping[str, Any] | str | None = None,
    unlabelled: Mapping[str, str | os.PathLike[str] | Sequence[str]] | None = None,
    to_iob2: bool = False,
    encoding: str = "utf-8",
    work_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    return_model: bool = False,
) -> Any:
    """Train a task adapter (or fine-tune) for `task` on `train` and write a TaskAdapter to `out`.

    `train`/`dev` are files (any format `crossling.data` reads for the task, in `encoding`: a codec,
    or "auto" for UTF-8 else Latin-1) or records.
    `pack` is the source language's LanguagePack (path or object; optional for ``finetune``, then
    `base` names the model). `unlabelled` maps other languages to unlabelled text (files, one
    sentence a line, or lists) for adversarial training. Checkpoints go to `work_dir` (default
    ``OUT.work/checkpoints``). Returns the saved `crossling.artifacts.TaskAdapter`, or with
    `return_model` the pair (TaskAdapter, TaskModel) — the model as trained, still in memory.
    """
    from transformers import set_seed

    from crossling.artifacts import TaskAdapter

    task_config = (
        TaskAdapterConfig.load(config, task=task) if config is not None else TaskAdapterConfig(task=task)
    )
    training = TrainingConfig.load(training) if training is not None else TrainingConfig()
    mode, adversarial = task_config.mode, task_config.adversarial
    if pack is None and mode != "finetune":
        raise ConfigError(f"mode {mode!r} trains on a LanguagePack's language adapter: pass pack= (--pack)")
    if adversarial != "none" and not unlabelled:
        raise ConfigError(
            f"--adversarial {adversarial} needs unlabelled text of other languages: "
            "pass unlabelled={lang: file} (--adv-unlabelled LANG=FILE ...)"
        )
    if adversarial == "none" and unlabelled:
        logger.warning("unlabelled text given but --adversarial is none: it is not used")
    pack = resolve_pack(pack)  # metadata only: the model loads below
    language = language or (pack.language if pack is not None else None)
    if not language:
        raise ConfigError("name the source language (language= / --lang) when training without a pack")
    from crossling.artifacts import check_output_directory

    out = check_output_directory(out, TaskAdapter.FORMAT)  # before training, not after
    work_dir = Path(work_dir) if work_dir is not None else out.with_name(out.name + ".work")
    checkpoints = work_dir / "checkpoints"
    last = last_checkpoint(checkpoints)
    # any checkpoint directory, complete or not, belongs to an earlier run
    if not resume and checkpoints.is_dir() and any(checkpoints.glob("checkpoint-*")):
        raise ConfigError(
            f"{checkpoints} holds checkpoints of an earlier run: pass --resume (resume=True) to continue "
            "it, or delete that directory to start afresh"
        )
    if resume and last is None:
        logger.warning("--resume: no checkpoint in %s, starting from scratch", checkpoints)

    train_records, train_name = _load_records(task, train, to_iob2, "the training records", encoding)
    if not train_records:
        raise CrosslingError(f"{train_name}: no training examples")
    dev_records, dev_name = (None, None)
    if dev is not None:
        dev_records, dev_name = _load_records(task, dev, to_iob2, "the development records", encoding)
    labels = build_label_map(task, train_records, dev_records, train_name=train_name, dev_name=dev_name or "")
    label2id = {label: i for i, label in enumerate(labels)}

    # Seed before any weight is created, so two runs with one seed are identical.
    set_seed(training.seed)
    packed = build_pack_model(pack, base, with_language_adapter=mode != "finetune")
    model, tokenizer = packed.model, packed.tokenizer
    max_length = training.max_length
    if max_length > model_max_tokens(model, tokenizer):
        max_length = model_max_tokens(model, tokenizer)
        logger.warning(
            "max_length %d is more than the model can encode: using %d", training.max_length, max_length
        )
    # adapters keeps modules in ModuleDicts: a name may not contain "."
    name = re.sub(r"[^0-9A-Za-z_-]", "_", f"{task}_{language}")
    if mode != "finetune":
        model.add_adapter(name, config=task_adapter_config(task_config.reduction_factor))
    add_head(model, name, task, labels)
    if mode == "finetune":
        for pname, param in model.named_parameters():
            # the pooler is unused by our heads (and randomly initialised): leave it out of training
            param.requires_grad = ".pooler." not in pname
        model.active_head = name
        generator_params = [p for p in model.base_model.parameters() if p.requires_grad]
    else:
        model.train_adapter(name)  # freezes the base; the task adapter trains, the head too
        model.set_active_adapters(active_setup(packed.language, name, mode))
        model.active_head = name
        generator_params = [p for n, p in model.base_model.named_parameters() if p.requires_grad]
    task_model = TaskModel(
        model,
        tokenizer,
        task,
        labels,
        name,
        packed.language,
        mode,
        packed.base_identity,
        None,
        max_length,
    )

    train_encoded = encode_records(
        task,
        tokenizer,
        train_records,
        label2id,
        max_length,
        label_all_subwords=task_config.label_all_subwords,
    )
    if train_encoded.truncated:
        logger.warning(
            "%d of %d training sequences are longer than %d tokens and were truncated",
            train_encoded.truncated,
            train_encoded.sequences,
            max_length,
        )

    adv_data = None
    discriminator = None
    if adversarial != "none":
        languages = [language] + sorted(lang for lang in unlabelled if lang != language)
        if len(languages) != len(unlabelled) + 1:
            raise ConfigError(
                f"--adv-unlabelled names the source language {language!r}; give other languages only"
            )
        pools, truncated = [], {}
        for lang in languages:
            sentences = (
                record_sentences(task, train_records)
                if lang == language
                else _unlabelled_sentences(task, unlabelled[lang])
            )
            encoded = encode_sentences(tokenizer, sentences, max_length)
            pools.append(encoded.features)
            truncated[lang] = encoded.truncated
        adv_data = AdversarialData(
            languages=languages,
            pools=pools,
            classes=task_config.discriminator_classes,
            batch_size=task_config.adv_batch_size or training.batch_size,
            seed=training.seed,
            truncated=truncated,
        )
        discriminator = LanguageDiscriminator(
            model.config.hidden_size, adv_data.num_classes, task_config.adv_hidden_size
        )
    module = TaskTrainingModule(model, discriminator, adversarial, task_config.adversarial_weight)

    eval_steps = training.eval_steps
    if dev_records and training.save_steps % eval_steps:
        eval_steps = training.save_steps  # Trainer keeps the best only among evaluated checkpoints
    metric = "f1" if task == "ner" else "accuracy"
    args = training_arguments(
        training,
        checkpoints,
        progress=progress,
        per_device_eval_batch_size=max(training.batch_size, 32),
        eval_strategy="steps" if dev_records else "no",
        eval_steps=eval_steps if dev_records else None,
        load_best_model_at_end=bool(dev_records),
        metric_for_best_model=metric if dev_records else None,
        greater_is_better=True,
        label_names=["labels"],
        # Keung's discriminator trains outside the DDP forward, through its own optimiser
        ddp_find_unused_parameters=adversarial == "keung",
    )
    pad_id = tokenizer.pad_token_id
    trainer = _trainer_class()(
        model=module,
        args=args,
        train_dataset=train_encoded.features,
        eval_dataset=dev_records or None,  # evaluated by TaskTrainer.evaluate, not by Trainer's loop
        data_collator=lambda features: collate(features, pad_id),
        task_model=task_model,
        dev_records=dev_records,
        adv_data=adv_data,
        adversarial=adversarial,
        task_config=task_config,
        generator_params=generator_params,
        callbacks=list(callbacks),
    )
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - started
    model.eval()
    if not trainer.args.should_save:
        # torchrun: the main process scores the dev set and writes the TaskAdapter; the others wait
        trainer.accelerator.wait_for_everyone()
        adapter = TaskAdapter.from_pretrained(out)
        task_model.task_adapter = adapter
        return (adapter, task_model) if return_model else adapter

    eval_results: dict[str, Any] = {}
    if dev_records:
        from crossling.eval.metrics import task_metrics

        prediction = task_model.predict(dev_records)
        gold = [r["tags"] if "tags" in r else r["label"] for r in dev_records]
        eval_results["dev"] = {
            "language": language,
            "data": dev_name,
            **task_metrics(task, gold, prediction.labels),
            "truncation": prediction.report,
            "best_checkpoint": Path(trainer.state.best_model_checkpoint).name
            if trainer.state.best_model_checkpoint
            else None,
        }
    history = [
        {
            k: v
            for k, v in entry.items()
            if k in ("step", "loss", "task_loss", "disc_loss", "gen_loss", "disc_acc")
        }
        for entry in trainer.state.log_history
        if "loss" in entry
    ]
    dev_history = [
        {"step": e["step"], metric: e.get(f"eval_{metric}")}
        for e in trainer.state.log_history
        if f"eval_{metric}" in e
    ]
    summary = {
        "steps": int(result.global_step),
        "train_loss": float(result.training_loss) if math.isfinite(result.training_loss) else None,
        "seconds": round(seconds, 2),
        "resumed_from": Path(last).name if last else None,
        "trainable_parameters": int(sum(p.numel() for p in module.parameters() if p.requires_grad)),
        "history": history,
        "dev_history": dev_history,
    }
    adapter = TaskAdapter(
        task=task,
        labels=labels,
        source_language=language,
        base=packed.base_identity,
        language_pack=str(packed.pack.path) if packed.pack is not None and packed.pack.path else None,
        eval_results=eval_results,
        config={
            "mode": mode,
            "adapter_name": name,
            "language_adapter": packed.language,
            "task_adapter": task_config.to_dict(),
            "training": training.replace(max_length=max_length).to_dict(),
            "processes": trainer.args.world_size,
            "data": {
                "train": train_name,
                "dev": dev_name,
                "train_examples": len(train_records),
                "dev_examples": len(dev_records) if dev_records else 0,
                "train_truncation": train_encoded.report(),
                "to_iob2": to_iob2,
            },
            "adversarial": {**adv_data.report(), "learning_rates": _adversarial_rates(task_config, training)}
            if adv_data is not None
            else None,
            "summary": summary,
        },
    )

    def write(directory: Path) -> None:
        if mode == "finetune":
            # A fine-tuned model is a whole model, not an adapter: it lives in model/ beside the
            # metadata (adapter/ stays absent so nobody mistakes it for one).
            model.save_pretrained(str(directory.parent / FULL_MODEL_DIR), safe_serialization=True)
            tokenizer.save_pretrained(str(directory.parent / FULL_MODEL_DIR))
        else:
            model.save_adapter(str(directory), name, with_head=True, use_safetensors=True)

    adapter.save_pretrained(out, write_adapter=write)
    trainer.accelerator.wait_for_everyone()
    task_model.task_adapter = adapter
    return (adapter, task_model) if return_model else adapter
