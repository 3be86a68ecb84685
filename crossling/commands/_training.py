"""The training options of the commands that train (adapt, train-task, distill, macular), declared once,
and the `TrainingConfig` built from them; a command that words an option its own way says so."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crossling.config import TrainingConfig

# destination -> help text, in the order of `--help`
TRAINING_HELP: dict[str, str] = {
    "budget": "preset size of the run: smoke (minutes, tiny), cpu (real model, 2 cores), paper",
    "max_steps": "optimiser steps (overrides the budget)",
    "epochs": "passes over the data when --max-steps is not set",
    "batch_size": "sentences per batch",
    "learning_rate": "peak learning rate",
    "save_steps": "checkpoint every N steps",
    "max_length": "maximum tokens per sentence (longer ones are truncated)",
    "seed": "random seed",
    "precision": "fp32, or bf16: matrix products in bfloat16 (faster on CPUs with AMX/AVX-512 BF16 and "
    "recent GPUs, many times slower on other CPUs; weights, optimiser and losses stay fp32), or auto: "
    "bf16 where this machine has it natively, else fp32",
    "resume": "continue an interrupted run from its last checkpoint",
}
TRAINING_OPTIONS = tuple(TRAINING_HELP)

# TrainingConfig fields that options of the same destination set as they are
_DIRECT_FIELDS = ("max_steps", "batch_size", "learning_rate", "save_steps", "max_length", "seed", "precision")


def add_training_arguments(
    p: argparse.ArgumentParser,
    *,
    options: Collection[str] = TRAINING_OPTIONS,
    help_texts: Mapping[str, str] | None = None,
) -> None:
    """Add the "training" option group; defaults come from the --budget preset.

    `options` picks which of `TRAINING_OPTIONS` the command has (they keep this order);
    `help_texts` rewords some of them for the command ({destination: help}).
    """
    from crossling.config import BUDGETS

    unknown = (set(options) | set(help_texts or {})) - set(TRAINING_OPTIONS)
    if unknown:
        raise ValueError(f"unknown training option(s) {sorted(unknown)}; known: {TRAINING_OPTIONS}")
    texts = {**TRAINING_HELP, **(help_texts or {})}
    declarations: dict[str, tuple[str, dict[str, Any]]] = {
        "budget": ("--budget", {"choices": BUDGETS, "default": "cpu"}),
        "max_steps": ("--max-steps", {"type": int}),
        "epochs": ("--epochs", {"type": float}),
        "batch_size": ("--batch-size", {"type": int}),
        "learning_rate": ("--lr", {"type": float, "dest": "learning_rate"}),
        "save_steps": ("--save-steps", {"type": int}),
        "max_length": ("--max-length", {"type": int}),
        "seed": ("--seed", {"type": int}),
        "precision": ("--precision", {"choices": ("fp32", "bf16", "auto")}),
        "resume": ("--resume", {"action": "store_true"}),
    }
    g = p.add_argument_group("training")
    for dest in TRAINING_OPTIONS:
        if dest in options:
            flag, kwargs = declarations[dest]
            g.add_argument(flag, help=texts[dest], **kwargs)


def training_config(
    args: argparse.Namespace, load: Callable[..., TrainingConfig] | None = None
) -> TrainingConfig:
    """`load(args.budget, **the options given)`; `load` defaults to `TrainingConfig.load`.

    Options the command lacks or the user left out keep the budget's value. --epochs alone means
    "train by epochs": max_steps becomes -1 unless --max-steps is given too.
    """
    from crossling.config import TrainingConfig

    overrides = {k: getattr(args, k) for k in _DIRECT_FIELDS if getattr(args, k, None) is not None}
    if getattr(args, "epochs", None) is not None:
        overrides["epochs"] = args.epochs
        overrides.setdefault("max_steps", -1)
    return (load or TrainingConfig.load)(args.budget, **overrides)
