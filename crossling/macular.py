"""Macular (Wang et al., KDD 2023) in adapter form: multi-task adversarial training with code-switch
augmentation and consistency losses, saved as an ordinary TaskAdapter.

    from crossling.macular import train_macular
    adapter = train_macular(
        {"nli": "xnli-en.tsv", "paraphrase": "pawsx-en.tsv"}, "task/nli-macular",
        dictionaries={"de": "en-de.tsv", "fr": "en-fr.tsv"}, pack="packs/en",
        config={"target_task": "nli", "alpha": 0.5}, training="smoke")
    model = crossling.tasks.load_task_model(adapter.path, pack="packs/de")   # like any task adapter

Two stages, on the source LanguagePack's frozen encoder + language adapter:

1. **Multi-task module** (paper Eq. 5–7). One *shared* task adapter, one head per task, trained
   on every task's original and code-switched batches (cross-entropy, plus the symmetric-KL
   consistency between the two views). A *task discriminator* (one hidden ReLU layer) learns which
   task a pooled shared representation comes from; in alternation, the shared adapter minimises the
   cross-entropy of the discriminator's output to the uniform distribution (Eq. 7), which is minimal
   exactly when the discriminator cannot tell the tasks apart.
2. **Task-specific module** (Eq. 15). A second, *task-specific* adapter for the target task;
   representations are aggregated ``α·shared + (1−α)·specific``. Loss =
   ``CE + β1·KL_sym(orig, code-switched) + β2·L_lang + β3·L_task-consistency`` with β1=1, β2=β3=0.1:
   ``L_lang`` is the language-adversarial loss — a discriminator (one hidden ReLU layer, trained in
   alternation) tells original from code-switched inputs, and the encoder pushes its output to ½;
   ``L_task-consistency`` is the symmetric KL between the *similar* task's head on the aggregated
   representation and on the shared one, on a batch of the similar task.

Deviations from the paper, on purpose:

* Adapters instead of a fully fine-tuned encoder: the "shared" and "task-specific" feature
  extractors are two bottleneck task adapters (SeqBn, MAD-X's) stacked on the frozen encoder + the
  pack's language adapter.
* Aggregation happens at every adapter layer (``Stack(lang, Average(shared, specific, [α, 1−α]))``
  of `adapters`), not once on the final representation. Because two bottleneck adapters averaged
  with weights are *exactly* one bottleneck adapter of twice the width (concatenated down
  projections, up projections scaled by α and 1−α), the trained result is saved as a single plain
  task adapter (reduction factor halved) + the target head: `load_task_model`, `crossling evaluate`
  and `MultiSourcePredictor` use it like any other task adapter. α=1 is the shared path exactly.
  (`adapters` 1.2's ``Average`` averages the *weighted* outputs, i.e. divides by the number of
  children once more; we pass weights ``2α, 2(1−α)`` so the result is the weighted sum.)
  What is saved is the target task's model only: the shared heads of the other tasks and the two
  discriminators are training-time parts and are not kept.
* The two stages run one after the other (stage 1: ``multitask_steps``; stage 2: the training
  steps); in stage 2 the shared adapter and shared heads are frozen, so the task-level consistency
  has a fixed reference (the paper trains the aggregated model end to end). The target head starts
  from the target task's shared head.
* Pair tasks only (nli, paraphrase): the consistency losses compare sentence-level predictions,
  which code-switching (which changes the number of subwords) keeps comparable; tagging is refused.
* Discriminators read the mean-pooled final hidden states (as `crossling.adversarial`), not [CLS].
* Which β weighs which term: the paper's Eq. 15 names β1–β3; we read β1 as the code-switch
  consistency, β2 as the language-adversarial term and β3 as the task-level consistency.
* Code-switching is drawn afresh for every batch (one seeded generator), as CoSDA-ML's dynamic
  sampling; both code-switched and original copies carry the task loss.
* The task-level consistency term is our reading of the paper's "consistency with a similar task":
  the similar task's (frozen) shared head must give the same distribution on the aggregated
  representation as on the shared one, so the task-specific adapter keeps what the similar task
  taught the shared adapter. The shared side is a fixed target, computed without dropout.
* A plain training loop (AdamW, linear decay, gradient clipping), no Trainer: no checkpoints or
  ``--resume``, no torchrun data parallelism, no best-checkpoint selection (the last step is saved;
  the dev score, when a dev set is given, is reported).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from crossling.adversarial import DivergenceError, LanguageDiscriminator
from crossling.config import Config, TrainingConfig, field
from crossling.errors import ConfigError, CrosslingError
from crossling.training_utils import adamw, autocast, warn_if_bf16_is_slow

logger = logging.getLogger(__name__)

SHARED = "macular_shared"
SPECIFIC = "macular_specific"
PAIR_TASKS = ("nli", "paraphrase")


# ---------------------------------------------------------------------- configuration
@dataclasses.dataclass(frozen=True)
class MacularConfig(Config):
    """Macular: tasks, aggregation, code-switching and the loss weights of Eq. 15.

    A weight of 0 switches its term off (the paper's ablations are presets).
    """

    tasks: tuple[str, ...] = field(("nli", "paraphrase"), doc="tasks of the multi-task module")
    target_task: str = field("", doc="the task the result predicts (default: the first of tasks)")
    similar_task: str = field("", doc="task of the task-level consistency loss (default: another task)")
    alpha: float = field(0.5, low=0.0, high=1.0, doc="aggregation alpha*shared + (1-alpha)*specific")
    reduction_factor: int = field(16, low=1, doc="bottleneck reduction of each of the two adapters")
    code_switch_ratio: float = field(0.3, low=0.0, high=1.0, doc="fraction of switchable words replaced")
    code_switch: bool = field(True, doc="train on code-switched copies too (False: plain training)")
    consistency_weight: float = field(1.0, low=0.0, doc="beta1: symmetric KL original vs code-switched")
    language_adversarial_weight: float = field(0.1, low=0.0, doc="beta2: language-adversarial loss")
    task_consistency_weight: float = field(0.1, low=0.0, doc="beta3: task-level consistency loss")
    task_adversarial_weight: float = field(0.1, low=0.0, doc="weight of the uniform-target task loss")
    multitask_steps: int = field(-1, low=-1, doc="stage-1 optimiser steps (-1: as many as stage 2)")
    discriminator_lr: float = field(5e-4, low=0.0, doc="learning rate of both discriminators")
    discriminator_hidden: int = field(0, low=0, doc="discriminators' hidden width (0: model hidden size)")

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "macular": {},
        "plain": {
            "code_switch": False,
            "consistency_weight": 0.0,
            "language_adversarial_weight": 0.0,
            "task_consistency_weight": 0.0,
            "task_adversarial_weight": 0.0,
        },
        "code-switch-only": {
            "consistency_weight": 0.0,
            "language_adversarial_weight": 0.0,
            "task_consistency_weight": 0.0,
            "task_adversarial_weight": 0.0,
        },
        "no-task-adversarial": {"task_adversarial_weight": 0.0},
        "no-language-adversarial": {"language_adversarial_weight": 0.0},
        "no-consistency": {"consistency_weight": 0.0, "task_consistency_weight": 0.0},
    }

    def validate(self) -> None:
        if not self.tasks:
            raise ConfigError("MacularConfig.tasks: name at least one task")
        bad = [t for t in self.tasks if t not in PAIR_TASKS]
        if bad:
            raise ConfigError(
                f"MacularConfig.tasks: {', '.join(bad)} not supported; Macular here takes the "
                f"sentence-pair tasks {', '.join(PAIR_TASKS)}"
            )
        if len(set(self.tasks)) != len(self.tasks):
            raise ConfigError("MacularConfig.tasks: a task is named twice")
        if self.target_task and self.target_task not in self.tasks:
            raise ConfigError(f"MacularConfig.target_task {self.target_task!r} is not one of tasks")
        if self.similar_task and self.similar_task not in self.tasks:
            raise ConfigError(f"MacularConfig.similar_task {self.similar_task!r} is not one of tasks")
        if self.similar_task and self.similar_task == self.target:
            raise ConfigError("MacularConfig.similar_task must differ from the target task")

    @property
    def target(self) -> str:
        return self.target_task or self.tasks[0]

    @property
    def similar(self) -> str | None:
        if self.similar_task:
            return self.similar_task
        others = [t for t in self.tasks if t != self.target]
        return others[0] if others else None


# ---------------------------------------------------------------------- losses
def symmetric_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """KL(p||q) + KL(q||p) of the softmax distributions, averaged over the batch."""
    log_p = F.log_softmax(logits_p.float(), dim=-1)
    log_q = F.log_softmax(logits_q.float(), dim=-1)
    kl_pq = (log_p.exp() * (log_p - log_q)).sum(-1)
    kl_qp = (log_q.exp() * (log_q - log_p)).sum(-1)
    return (kl_pq + kl_qp).mean()


def uniform_target_loss(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the discriminator's output to the uniform distribution (paper Eq. 7):
    ``-1/K Σ_k log D_k(h)``, minimal (= log K) exactly when the output is uniform."""
    return -F.log_softmax(logits.float(), dim=-1).mean(-1).mean()


def discriminator_step(
    discriminator: nn.Module, optimizer: torch.optim.Optimizer, features: torch.Tensor, labels: torch.Tensor
) -> tuple[float, float]:
    """One update of a discriminator on detached features; returns (loss, accuracy)."""
    optimizer.zero_grad(set_to_none=True)
    logits = discriminator(features.detach())
    loss = F.cross_entropy(logits, labels)
    if not torch.isfinite(loss):
        raise DivergenceError(f"the discriminator loss is {loss.item()}")
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach()), float((logits.argmax(-1) == labels).float().mean())


# ---------------------------------------------------------------------- model
class MacularModel(nn.Module):
    """The pack's AdapterModel with the shared adapter (+ one head per task), the task-specific
    adapter (+ the target head) and the two discriminators."""

    def __init__(
        self,
        model: Any,
        language: str | None,
        labels: Mapping[str, list[str]],
        config: MacularConfig,
        name: str,
    ) -> None:
        from crossling.tasks.model import add_head, task_adapter_config

        super().__init__()
        self.model = model
        self.language = language
        self.config = config
        self.name = name
        self.tasks = list(config.tasks)
        model.add_adapter(SHARED, config=task_adapter_config(config.reduction_factor))
        model.add_adapter(SPECIFIC, config=task_adapter_config(config.reduction_factor))
        for task in self.tasks:
            add_head(model, self.head(task), task, list(labels[task]))
        add_head(model, name, config.target, list(labels[config.target]))
        hidden = model.config.hidden_size
        self.task_discriminator = LanguageDiscriminator(hidden, len(self.tasks), config.discriminator_hidden)
        self.language_discriminator = LanguageDiscriminator(hidden, 2, config.discriminator_hidden)

    @staticmethod
    def head(task: str) -> str:
        return f"macular_{task}"

    def setup(self, path: str) -> Any:
        from adapters.composition import Average, Stack

        if path == "shared":
            inner: Any = SHARED
        elif path == "aggregated":
            alpha = self.config.alpha
            # adapters 1.2's Average takes the *mean* of the weighted outputs (weights * states, then
            # mean over the children): weights times the number of children give the weighted sum
            inner = Average(SHARED, SPECIFIC, weights=[2 * alpha, 2 * (1.0 - alpha)], normalize_weights=False)
        else:
            raise CrosslingError(f"unknown Macular path {path!r}")
        return Stack(self.language, inner) if self.language else inner

    def run(
        self, batch: Mapping[str, torch.Tensor], path: str, head: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, mean-pooled final hidden states) of `batch` through `path` and `head`."""
        from crossling.language import mean_pool

        self.model.set_active_adapters(self.setup(path))
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        out = self.model(**inputs, head=head, output_hidden_states=True)
        return out.logits, mean_pool(out.hidden_states[-1], batch["attention_mask"])

    def freeze_for_stage(self, stage: int) -> None:
        """Stage 1: shared adapter + task heads train; stage 2: specific adapter + target head."""
        for pname, param in self.model.named_parameters():
            if stage == 1:
                param.requires_grad = f".{SHARED}." in pname or any(
                    f"heads.{self.head(t)}." in pname for t in self.tasks
                )
            else:
                param.requires_grad = f".{SPECIFIC}." in pname or f"heads.{self.name}." in pname

    def init_target_head(self) -> None:
        """The target head starts from the target task's shared head."""
        source = self.model.heads[self.head(self.config.target)]
        self.model.heads[self.name].load_state_dict(source.state_dict())

    def merge_into(self, merged: str) -> int:
        """Add adapter `merged`: one bottleneck adapter computing α·shared + (1−α)·specific exactly.
        Returns its bottleneck width (twice each adapter's)."""
        from adapters import SeqBnConfig

        hidden = self.model.config.hidden_size
        params = dict(self.model.named_parameters())
        params_width = None
        for pname, value in params.items():
            if f".adapters.{SHARED}.adapter_down.0.weight" in pname:
                params_width = value.shape[0]
                break
        if params_width is None:
            raise CrosslingError("the shared adapter has no bottleneck layers")
        width = 2 * params_width
        # adapters sizes the bottleneck as int(hidden // factor): hidden / width can floor to width - 1
        self.model.add_adapter(merged, config=SeqBnConfig(reduction_factor=hidden / (width + 0.5)))
        alpha = self.config.alpha
        params = dict(self.model.named_parameters())
        done = 0
        with torch.no_grad():
            for pname, target in params.items():
                if f".adapters.{merged}." not in pname:
                    continue
                shared = params[pname.replace(f".adapters.{merged}.", f".adapters.{SHARED}.")]
                specific = params[pname.replace(f".adapters.{merged}.", f".adapters.{SPECIFIC}.")]
                if pname.endswith(("adapter_down.0.weight", "adapter_down.0.bias")):
                    value = torch.cat([shared, specific], dim=0)
                elif pname.endswith("adapter_up.weight"):
                    value = torch.cat([alpha * shared, (1.0 - alpha) * specific], dim=1)
                elif pname.endswith("adapter_up.bias"):
                    value = alpha * shared + (1.0 - alpha) * specific
                else:
                    raise CrosslingError(f"cannot merge adapter parameter {pname}")
                if value.shape != target.shape:
                    raise CrosslingError(
                        f"merged adapter shape mismatch at {pname}: {tuple(value.shape)} vs "
                        f"{tuple(target.shape)} (hidden size {hidden}, bottleneck {width})"
                    )
                target.copy_(value)
                done += 1
        if not done:
            raise CrosslingError("no adapter parameters were merged")
        return width


# ---------------------------------------------------------------------- data
class _Batches:
    """Seeded shuffled batches of one task's records, epoch after epoch."""

    def __init__(self, records: Sequence[dict[str, Any]], batch_size: int, seed: int) -> None:
        self.records = list(records)
        self.batch_size = min(batch_size, len(self.records))
        self.rng = random.Random(seed)
        self.order: list[int] = []

    def next(self) -> list[dict[str, Any]]:
        if len(self.order) < self.batch_size:
            fresh = list(range(len(self.records)))
            self.rng.shuffle(fresh)
            self.order.extend(fresh)
        chosen, self.order = self.order[: self.batch_size], self.order[self.batch_size :]
        return [self.records[i] for i in chosen]


def _steps(training: TrainingConfig, examples: int) -> int:
    if training.max_steps > 0:
        return training.max_steps
    return max(1, math.ceil(training.epochs * examples / training.batch_size))


def _load(task: str, data: Any, what: str) -> tuple[list[dict[str, Any]], str]:
    from crossling.tasks.data import read_task_data

    if isinstance(data, (str, os.PathLike)):
        return read_task_data(task, data), str(data)
    return list(data), what


def _resolve_dictionaries(dictionaries: Any) -> dict[str, dict[str, list[str]]]:
    from crossling.codeswitch import read_dictionary

    if not dictionaries:
        return {}
    out = {}
    for lang, d in dictionaries.items():
        out[lang] = (
            read_dictionary(d) if isinstance(d, (str, os.PathLike)) else {k: list(v) for k, v in d.items()}
        )
    return out


# ---------------------------------------------------------------------- training
def train_macular(
    train: Mapping[str, str | os.PathLike[str] | Sequence[dict[str, Any]]],
    out: str | os.PathLike[str],
    *,
    dictionaries: Mapping[str, Any] | None = None,
    pack: Any | None = None,
    base: str | os.PathLike[str] | None = None,
    language: str | None = None,
    dev: str | os.PathLike[str] | Sequence[dict[str, Any]] | None = None,
    config: MacularConfig | Mapping[str, Any] | str | None = None,
    training: TrainingConfig | Mapping[str, Any] | str | None = None,
    return_model: bool = False,
) -> Any:
    """Train Macular on `train` ({task: file or records}) and save the result as a TaskAdapter at `out`.

    `dictionaries` maps languages to bilingual dictionaries (TSV paths, or {word: [translations]})
    from the source language; needed unless code-switching is off. `dev` is a labelled dev set of
    the target task (scored at the end). Returns the TaskAdapter (its ``config["macular"]`` holds the
    report: dictionary sizes and sample, losses per stage), or with `return_model` the pair
    (TaskAdapter, MacularModel).
    """
    from transformers import set_seed

    from crossling.artifacts import TaskAdapter, check_output_directory
    from crossling.codeswitch import CodeSwitcher
    from crossling.tasks.data import collate, encode_pairs
    from crossling.tasks.labels import build_label_map
    from crossling.tasks.model import TaskModel, build_pack_model, model_max_tokens, resolve_pack

    out = check_output_directory(out, TaskAdapter.FORMAT)  # before training, not after
    cfg = MacularConfig.load(config) if config is not None else MacularConfig()
    training = TrainingConfig.load(training) if training is not None else TrainingConfig()
    missing = [t for t in cfg.tasks if t not in train]
    extra = [t for t in train if t not in cfg.tasks]
    if missing or extra:
        raise ConfigError(
            f"training data must be given for exactly the tasks {', '.join(cfg.tasks)}"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; not in tasks: {', '.join(extra)}" if extra else "")
        )
    dicts = _resolve_dictionaries(dictionaries)
    switching = cfg.code_switch
    if switching and not any(dicts.values()):
        raise ConfigError(
            "code-switching needs bilingual dictionaries (--dict LANG=FILE), or code_switch=False"
        )
    if pack is None:
        raise ConfigError("Macular trains task adapters on a LanguagePack: pass pack= (--pack)")
    pack = resolve_pack(pack)
    language = language or pack.language

    records: dict[str, list[dict[str, Any]]] = {}
    names: dict[str, str] = {}
    labels: dict[str, list[str]] = {}
    for task in cfg.tasks:
        records[task], names[task] = _load(task, train[task], f"the {task} training records")
        if not records[task]:
            raise CrosslingError(f"{names[task]}: no training examples")
    dev_records, dev_name = (None, None)
    if dev is not None:
        dev_records, dev_name = _load(cfg.target, dev, "the development records")
    for task in cfg.tasks:
        labels[task] = build_label_map(
            task,
            records[task],
            dev_records if task == cfg.target else None,
            train_name=names[task],
            dev_name=dev_name or "",
        )
    set_seed(training.seed)
    packed = build_pack_model(pack, base)
    model, tokenizer = packed.model, packed.tokenizer
    max_length = min(training.max_length, model_max_tokens(model, tokenizer))
    name = re.sub(r"[^0-9A-Za-z_-]", "_", f"{cfg.target}_{language}")
    module = MacularModel(model, packed.language, labels, cfg, name)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    module.to(device)
    label2id = {t: {label: i for i, label in enumerate(labels[t])} for t in cfg.tasks}
    switcher = CodeSwitcher(dicts, ratio=cfg.code_switch_ratio, seed=training.seed) if switching else None

    if training.precision == "bf16":
        warn_if_bf16_is_slow()

    def run(encoded: dict[str, torch.Tensor], setup: str, head: str) -> tuple[torch.Tensor, torch.Tensor]:
        # the model under training.precision; losses, discriminators and the optimiser stay fp32
        with autocast(training.precision, device):
            logits, pooled = module.run(encoded, setup, head)
        return logits.float(), pooled.float()

    def encode(task: str, batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        features = encode_pairs(tokenizer, batch, label2id[task], max_length).features
        return {k: v.to(device) for k, v in collate(features, tokenizer.pad_token_id).items()}

    def switched(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        assert switcher is not None
        return [
            {**r, "text_a": switcher.switch(r["text_a"]), "text_b": switcher.switch(r["text_b"])}
            for r in batch
        ]

    def check(loss: torch.Tensor, stage: int, step: int) -> None:
        if not torch.isfinite(loss):
            raise CrosslingError(
                f"Macular stage {stage} diverged at step {step}: the loss is {loss.item()}; "
                "lower the learning rate"
            )

    def optimiser(steps: int) -> tuple[torch.optim.Optimizer, Any, list[nn.Parameter]]:
        params = [p for p in model.parameters() if p.requires_grad]
        opt = adamw(params, lr=training.learning_rate, weight_decay=training.weight_decay)
        warm = int(training.warmup_ratio * steps)

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return max(0.0, (steps - step) / max(1, steps - warm))

        return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor), params

    started = time.perf_counter()
    model.train()
    # ------------------------------------------------------------------ stage 1: multi-task module
    steps2 = _steps(training, len(records[cfg.target]))
    steps1 = steps2 if cfg.multitask_steps < 0 else cfg.multitask_steps
    module.freeze_for_stage(1)
    opt, sched, params = optimiser(max(1, steps1))
    task_disc_opt = adamw(module.task_discriminator.parameters(), lr=cfg.discriminator_lr)
    lang_disc_opt = adamw(module.language_discriminator.parameters(), lr=cfg.discriminator_lr)
    batches = {
        t: _Batches(records[t], training.batch_size, training.seed + i) for i, t in enumerate(cfg.tasks)
    }
    history1: list[dict[str, float]] = []
    for step in range(steps1):
        opt.zero_grad(set_to_none=True)
        pooled, task_ids, parts = [], [], {"ce": 0.0, "kl": 0.0, "task_adv": 0.0}
        total = torch.zeros((), device=device)
        for index, task in enumerate(cfg.tasks):
            batch = batches[task].next()
            views = [batch] + ([switched(batch)] if switcher is not None else [])
            logits = []
            for view in views:
                encoded = encode(task, view)
                lg, pl = run(encoded, "shared", module.head(task))
                ce = F.cross_entropy(lg, encoded["labels"])
                total = total + ce / len(views)
                parts["ce"] += float(ce.detach()) / len(views)
                parts[f"ce_{task}"] = parts.get(f"ce_{task}", 0.0) + float(ce.detach()) / len(views)
                logits.append(lg)
                pooled.append(pl)
                task_ids.append(torch.full((pl.shape[0],), index, dtype=torch.long, device=device))
            if len(logits) == 2 and cfg.consistency_weight > 0:
                kl = symmetric_kl(logits[0], logits[1])
                total = total + cfg.consistency_weight * kl
                parts["kl"] += float(kl.detach())
        if cfg.task_adversarial_weight > 0 and len(cfg.tasks) > 1:
            features, ids = torch.cat(pooled), torch.cat(task_ids)
            d_loss, d_acc = discriminator_step(module.task_discriminator, task_disc_opt, features, ids)
            adv = uniform_target_loss(module.task_discriminator(features))
            total = total + cfg.task_adversarial_weight * adv
            parts.update(task_adv=float(adv.detach()), task_disc_loss=d_loss, task_disc_acc=d_acc)
        check(total, 1, step)
        total.backward()
        module.task_discriminator.zero_grad(set_to_none=True)
        torch.nn.utils.clip_grad_norm_(params, training.max_grad_norm)
        opt.step()
        sched.step()
        parts["ce"] /= len(cfg.tasks)
        history1.append(
            {
                "step": step + 1,
                "loss": round(float(total.detach()), 4),
                **{k: round(v, 4) for k, v in parts.items()},
            }
        )

    # ------------------------------------------------------------------ stage 2: task-specific module
    module.init_target_head()
    module.freeze_for_stage(2)
    opt, sched, params = optimiser(steps2)
    target, similar = cfg.target, cfg.similar
    history2: list[dict[str, float]] = []
    for step in range(steps2):
        opt.zero_grad(set_to_none=True)
        batch = batches[target].next()
        views = [batch] + ([switched(batch)] if switcher is not None else [])
        logits, pooled = [], []
        parts = {"ce": 0.0}
        total = torch.zeros((), device=device)
        for view in views:
            encoded = encode(target, view)
            lg, pl = run(encoded, "aggregated", name)
            ce = F.cross_entropy(lg, encoded["labels"])
            total = total + ce / len(views)
            parts["ce"] += float(ce.detach()) / len(views)
            logits.append(lg)
            pooled.append(pl)
        if len(views) == 2 and cfg.consistency_weight > 0:
            kl = symmetric_kl(logits[0], logits[1])
            total = total + cfg.consistency_weight * kl
            parts["kl"] = float(kl.detach())
        if len(views) == 2 and cfg.language_adversarial_weight > 0:
            features = torch.cat(pooled)
            ids = torch.cat(
                [torch.zeros(len(batch), dtype=torch.long), torch.ones(len(batch), dtype=torch.long)]
            ).to(device)
            d_loss, d_acc = discriminator_step(module.language_discriminator, lang_disc_opt, features, ids)
            adv = uniform_target_loss(module.language_discriminator(features))
            total = total + cfg.language_adversarial_weight * adv
            parts.update(lang_adv=float(adv.detach()), lang_disc_loss=d_loss, lang_disc_acc=d_acc)
        if similar is not None and cfg.task_consistency_weight > 0:
            encoded = encode(similar, batches[similar].next())
            # the frozen shared path's prediction is a target, so without dropout (as the language
            # adapter's KL reference): with it the KL would mostly measure two dropout masks
            module.model.eval()
            try:
                with torch.no_grad():
                    reference, _ = run(encoded, "shared", module.head(similar))
            finally:
                module.model.train()
            current, _ = run(encoded, "aggregated", module.head(similar))
            tc = symmetric_kl(current, reference)
            total = total + cfg.task_consistency_weight * tc
            parts["task_consistency"] = float(tc.detach())
        check(total, 2, step)
        total.backward()
        module.language_discriminator.zero_grad(set_to_none=True)
        torch.nn.utils.clip_grad_norm_(params, training.max_grad_norm)
        opt.step()
        sched.step()
        history2.append(
            {
                "step": step + 1,
                "loss": round(float(total.detach()), 4),
                **{k: round(v, 4) for k, v in parts.items()},
            }
        )
    seconds = time.perf_counter() - started

    # ------------------------------------------------------------------ the result: one plain task adapter
    module.to("cpu")  # TaskModel.predict and saving work on the CPU
    model.eval()
    width = module.merge_into(name)
    for param in model.parameters():
        param.requires_grad = False
    task_model = TaskModel(
        model,
        tokenizer,
        target,
        labels[target],
        name,
        packed.language,
        "adapter",
        packed.base_identity,
        None,
        max_length,
    )
    eval_results: dict[str, Any] = {}
    if dev_records:
        from crossling.eval.metrics import task_metrics

        prediction = task_model.predict(dev_records)
        gold = [r["label"] for r in dev_records]
        eval_results["dev"] = {
            "language": language,
            "data": dev_name,
            **task_metrics(target, gold, prediction.labels),
            "truncation": prediction.report,
        }
    report = {
        "config": cfg.to_dict(),
        "target_task": target,
        "similar_task": similar,
        "code_switch": switcher.report.to_dict() if switcher is not None else None,
        "stage1": {"steps": steps1, "history": history1},
        "stage2": {"steps": steps2, "history": history2},
        "seconds": round(seconds, 2),
        "data": {t: {"train": names[t], "examples": len(records[t])} for t in cfg.tasks},
        "merged_adapter": {"bottleneck": width, "reduction_factor": model.config.hidden_size / width},
    }
    adapter = TaskAdapter(
        task=target,
        labels=labels[target],
        source_language=language,
        base=packed.base_identity,
        language_pack=str(packed.pack.path) if packed.pack is not None and packed.pack.path else None,
        eval_results=eval_results,
        config={
            "mode": "adapter",
            "method": "macular",
            "adapter_name": name,
            "language_adapter": packed.language,
            "training": training.replace(max_length=max_length).to_dict(),
            "data": {
                "train": names[target],
                "dev": dev_name,
                "train_examples": len(records[target]),
                "dev_examples": len(dev_records) if dev_records else 0,
            },
            "macular": report,
            "summary": {
                "steps": steps1 + steps2,
                "seconds": round(seconds, 2),
                "train_loss": history2[-1]["loss"] if history2 else None,
            },
        },
    )
    adapter.save_pretrained(
        out, write_adapter=lambda d: model.save_adapter(str(d), name, with_head=True, use_safetensors=True)
    )
    task_model.task_adapter = adapter
    task_model.activate()
    if return_model:
        return adapter, module
    return adapter


def read_train_assignments(values: Sequence[str] | None, option: str = "--train") -> dict[str, Path]:
    """["nli=x.tsv", ...] -> {"nli": Path("x.tsv")}, each task once."""
    out: dict[str, Path] = {}
    for value in values or []:
        key, sep, path = value.partition("=")
        if not sep or not key or not path:
            raise ConfigError(f"{option} expects NAME=PATH, got {value!r}")
        if key in out:
            raise ConfigError(f"{option}: {key!r} given twice")
        out[key] = Path(path)
    return out
