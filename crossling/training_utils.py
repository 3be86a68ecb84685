"""What crossling's three `transformers.Trainer`s share: the language adapter's (crossling.language),
the task adapters' (crossling.tasks.training) and the distillation's (crossling.distill.train).

* `training_arguments`: `TrainingArguments` from a `TrainingConfig`, with crossling's fixed choices
  (checkpoints, logging, seeds, CPU/DDP settings); each trainer passes its own extras as overrides.
* `LossPartsLoggingMixin`: the parts of the loss averaged into every log line, tokens/s, and a clear
  stop — naming the last good checkpoint — when the loss is no longer finite.
* `last_checkpoint` and `Throughput`, which both of those rely on.
* `adamw`: AdamW, fused where torch has it (every optimiser crossling builds itself goes through it).
* `autocast`: `TrainingConfig.precision` for the steps Trainer does not run itself;
  `native_precision`: what its "auto" resolves to on this machine.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import platform
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import torch

from crossling.errors import CrosslingError

if TYPE_CHECKING:
    from transformers import TrainingArguments

    from crossling.config import TrainingConfig

logger = logging.getLogger(__name__)


def on_model_device(batch: Mapping[str, Any], model: Any) -> dict[str, Any]:
    """`batch`'s tensors on the device of `model`'s parameters. Trainer moves a model to the GPU and
    leaves it there; the evaluations and encoders that run after it build their batches on the CPU."""
    device = next(model.parameters()).device
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


@functools.cache
def _bf16_is_native() -> bool:
    """Whether this CPU has bf16 instructions. On x86 that is AVX-512 BF16 or AMX: oneDNN's own check
    also accepts plain AVX-512 (Skylake to Ice Lake), where bf16 is emulated and slower than fp32.
    Elsewhere (Arm) oneDNN's check is the one there is."""
    names = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    checks = [getattr(torch.cpu, name, None) for name in names]
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686") and all(checks):
        return any(check() for check in checks)
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())  # Arm, or a torch without those checks


def native_precision() -> str:
    """What `precision: auto` means on this machine: "bf16" on a GPU that supports it or a CPU with
    bf16 instructions (AVX-512 BF16 or AMX on x86), else "fp32".

    Why not bf16 everywhere: without those instructions the CPU emulates it, and a training step of
    multilingual-e5-small took 13x as long in bf16 as in fp32 on a 2-core AVX2 AMD EPYC (2026-12-03),
    where a CPU with native bf16 made it 1.4-1.6x faster (benchmarks/results/precision.json).
    """
    if torch.cuda.is_available():  # without emulation: pre-Ampere GPUs would say yes and run it slowly
        try:
            supported = torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # torch before 2.4 has no such argument, and no emulation to leave out
            supported = torch.cuda.is_bf16_supported()
        return "bf16" if supported else "fp32"
    return "bf16" if _bf16_is_native() else "fp32"


@functools.cache
def fused_adamw_available() -> bool:
    """Whether torch has the fused AdamW for CPU tensors (since torch 2.4); probed with a real step,
    because torch checks the device only when it first steps."""
    try:
        param = torch.zeros(1, requires_grad=True)
        param.grad = torch.zeros(1)
        torch.optim.AdamW([param], fused=True).step()
    except (RuntimeError, TypeError, ValueError):
        return False
    return True


def adamw(params: Any, **kwargs: Any) -> torch.optim.AdamW:
    """`torch.optim.AdamW`, fused when available: the same update rule, one kernel over all tensors.

    Why it matters: for full fine-tuning of a 250k-vocabulary encoder (e5-small, XLM-R) the update of
    the embedding matrix dominates a CPU step; on one core the for-each AdamW takes ~1.8 s per step
    for e5-small's 118M parameters, the fused one ~0.35 s (measured 2026-12-02). A caller asking for
    `foreach` gets it. Resuming loads the optimiser's saved settings, so a checkpoint written by the
    for-each optimiser resumes for-each (correct, only slower).
    """
    if fused_adamw_available() and "foreach" not in kwargs:
        kwargs.setdefault("fused", True)
    return torch.optim.AdamW(params, **kwargs)


def autocast(precision: str, device: torch.device | str = "cpu") -> contextlib.AbstractContextManager:
    """The autocast context of a `TrainingConfig.precision` for steps Trainer does not run itself
    (Keung's discriminator and generator steps, Macular); a no-op at fp32."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")


def warn_if_bf16_is_slow() -> None:
    """bf16 autocast runs everywhere, but without bf16 instructions a CPU emulates it slowly."""
    if torch.cuda.is_available():
        return
    if not _bf16_is_native():
        logger.warning(
            "precision bf16: this CPU has no native bfloat16 support; training will be many times "
            "slower than fp32 (precision auto chooses fp32 here)"
        )


def last_checkpoint(directory: Path) -> str | None:
    """The newest complete `checkpoint-N` in `directory`, or None (shared by every crossling trainer).

    Complete means its `trainer_state.json`, which Trainer writes after the weights, optimiser and RNG
    states, exists and parses: a process killed while saving leaves a newer but partial directory,
    which `transformers.trainer_utils.get_last_checkpoint` would pick and then fail to load.
    """
    if not directory.is_dir():
        return None
    found = [
        (int(m.group(1)), path)
        for path in directory.iterdir()
        if path.is_dir() and (m := re.fullmatch(r"checkpoint-(\d+)", path.name))
    ]
    for _, path in sorted(found, reverse=True):
        try:
            json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        return str(path)
    return None


class Throughput:
    """Running count of real (non-pad) tokens per second, for the progress bar."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.tokens = 0

    def add(self, attention_mask: torch.Tensor) -> None:
        self.tokens += int(attention_mask.sum())

    @property
    def per_second(self) -> float:
        return self.tokens / max(time.perf_counter() - self.start, 1e-9)


def training_arguments(
    training: TrainingConfig, output_dir: str | Path, *, progress: bool = True, **overrides: Any
) -> TrainingArguments:
    """`TrainingArguments` for `training`, checkpointing to `output_dir`; `overrides` win.

    The fixed choices: fused AdamW where available (see `adamw`); the last two checkpoints kept (a
    crashed save never loses the only one), in safetensors; logs every min(50, save_steps) steps; data
    order seeded like the model; no reporting integrations; data loading in the main process (the
    corpora are in memory already).
    """
    from transformers import TrainingArguments

    kwargs: dict[str, Any] = {
        "output_dir": str(output_dir),
        "per_device_train_batch_size": training.batch_size,
        "gradient_accumulation_steps": training.gradient_accumulation_steps,
        "learning_rate": training.learning_rate,
        "weight_decay": training.weight_decay,
        "warmup_ratio": training.warmup_ratio,
        "max_grad_norm": training.max_grad_norm,
        "max_steps": training.max_steps,
        "num_train_epochs": training.epochs,
        "save_steps": training.save_steps,
        "save_total_limit": 2,
        "logging_steps": max(1, min(50, training.save_steps)),
        "seed": training.seed,
        "data_seed": training.seed,
        "report_to": [],
        "disable_tqdm": not progress,
        "dataloader_num_workers": 0,
        "remove_unused_columns": False,
        "save_safetensors": True,
        "ddp_find_unused_parameters": False,
        "dataloader_pin_memory": torch.cuda.is_available(),
        # without a GPU, say so: otherwise Trainer does not set up gloo DDP under torchrun
        "use_cpu": not torch.cuda.is_available(),
        "optim": "adamw_torch_fused" if fused_adamw_available() else "adamw_torch",  # see `adamw`
        "bf16": training.precision == "bf16",  # Trainer/accelerate autocast the model's forward
    }
    # TrainingArguments writes bf16 into this variable but never clears it, and every later Trainer
    # of the process reads it back: without this, one bf16 run would make later fp32 runs bf16 too.
    os.environ["ACCELERATE_MIXED_PRECISION"] = "bf16" if training.precision == "bf16" else "no"
    if training.precision == "bf16":
        warn_if_bf16_is_slow()
    return TrainingArguments(**{**kwargs, **overrides})


class LossPartsLoggingMixin:
    """Mix into a `transformers.Trainer` subclass (before Trainer): loss parts and tokens/s in the logs,
    and a clear error when training diverges.

    `compute_loss` reports with `record_loss_parts` (e.g. {"mlm": .., "kl": ..}), `count_tokens` and
    `check_finite_loss`; every log line with a "loss" then carries the mean of each part since the
    previous one and, if `log_tokens_per_second`, "tokens_per_s". The class attributes keep each
    trainer's own wording of the divergence error. After `train`, the model's forward is the plain one
    again (bf16 autocast stays inside training).
    """

    #: add "tokens_per_s" (of the tokens passed to `count_tokens`) to the logs
    log_tokens_per_second: bool = True
    #: the divergence error; {what} says what went wrong, {step} and {last} (checkpoint) are filled in
    divergence_message: str = (
        "training diverged ({what}) at step {step}; last good checkpoint: {last}. "
        "Lower the learning rate and --resume."
    )
    #: {what} for a loss that is NaN or infinite; {loss} is its value
    nonfinite_loss_message: str = "loss {loss}"

    # Trainer attributes the mixin relies on (set by Trainer.__init__)
    args: Any
    state: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.throughput = Throughput()
        self._parts: dict[str, list[float]] = {}

    def train(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().train(*args, **kwargs)
        finally:
            # accelerate wraps the model's forward in autocast under bf16 and leaves it there: remove it,
            # so that what runs after training (held-out evaluation, prediction) is fp32 again
            self.accelerator.unwrap_model(self.model, keep_fp32_wrapper=False)

    def record_loss_parts(self, parts: Mapping[str, float]) -> None:
        """Keep the values of this step's loss parts until the next log line averages them."""
        for key, value in parts.items():
            self._parts.setdefault(key, []).append(value)

    def count_tokens(self, attention_mask: torch.Tensor) -> None:
        self.throughput.add(attention_mask)

    def check_finite_loss(self, loss: torch.Tensor) -> None:
        """Stop with `diverged` when `loss` is NaN or infinite: continuing would only write NaNs."""
        if not torch.isfinite(loss):
            self.diverged(self.nonfinite_loss_message.format(loss=float(loss.detach())))

    def diverged(self, what: str) -> NoReturn:
        """Raise the divergence error, naming the last good checkpoint to --resume from."""
        last = last_checkpoint(Path(self.args.output_dir))
        raise CrosslingError(
            self.divergence_message.format(what=what, step=self.state.global_step, last=last or "none yet")
        )

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # a training log line (evaluation metrics pass through untouched)
            for key, values in self._parts.items():
                if values:
                    logs[key] = round(sum(values) / len(values), 4)
            self._parts = {}
            if self.log_tokens_per_second:
                logs["tokens_per_s"] = round(self.throughput.per_second, 1)
        super().log(logs, start_time)
