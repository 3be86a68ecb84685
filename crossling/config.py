"""Frozen dataclass configurations with named presets, overrides, validation and YAML round-trip.

Modelled on `adapters`' `AdapterConfig`: a config is an immutable value; `load` accepts a preset name,
a dict, a YAML path or an instance, plus keyword overrides::

    cfg = LanguageAdapterConfig.load("unibridge", kl_weight=0.0)   # the "- KL" ablation
    cfg.to_dict(); LanguageAdapterConfig.from_yaml(cfg.to_yaml()) == cfg

Every field is checked against its type hint and its declared range when the object is built, so a
typo or an out-of-range value fails at once with a message that names the field.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, Union

import yaml

from crossling.errors import ConfigError

C = TypeVar("C", bound="Config")


def field(default: Any, *, low: float | None = None, high: float | None = None, doc: str = "") -> Any:
    """A dataclass field with an inclusive numeric range and a one-line description."""
    kw: dict[str, Any] = {"metadata": {"low": low, "high": high, "doc": doc}}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use tuples, not mutable containers, as config defaults")
    return dataclasses.field(default=default, **kw)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(name: str, value: Any, tp: Any) -> Any:
    """Check `value` against type hint `tp`; return it in canonical form (lists become tuples)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        errors = []
        for option in typing.get_args(tp):
            try:
                return _coerce(name, value, option)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{name}: {value!r} is none of {_type_name(tp)}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{name}: expected None, got {value!r}")
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{name}: {value!r} is not one of {', '.join(map(repr, allowed))}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {type(value).__name__} {value!r}")
        args = typing.get_args(tp)
        item_tp = args[0] if args else Any
        return tuple(_coerce(f"{name}[{i}]", v, item_tp) for i, v in enumerate(value))
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name}: expected true/false, got {type(value).__name__} {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{name}: expected a string, got {type(value).__name__} {value!r}")
    raise ConfigError(f"{name}: unsupported field type {_type_name(tp)}")  # a bug in a Config class


@dataclasses.dataclass(frozen=True)
class Config:
    """Base class. Subclasses are frozen dataclasses and may define `PRESETS: {name: overrides}`."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _coerce(f"{type(self).__name__}.{f.name}", getattr(self, f.name), hints[f.name])
            low, high = f.metadata.get("low"), f.metadata.get("high")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if (low is not None and value < low) or (high is not None and value > high):
                    bounds = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
                    raise ConfigError(f"{type(self).__name__}.{f.name}: {value!r} is outside {bounds}")
            object.__setattr__(self, f.name, value)
        self.validate()

    def validate(self) -> None:
        """Cross-field checks; subclasses override and raise ConfigError."""

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls: type[C], config: str | Path | Mapping[str, Any] | C | None = None, **overrides: Any) -> C:
        """Build from a preset name, a YAML file, a dict or an instance, then apply `overrides`."""
        if isinstance(config, cls):
            base = config.to_dict()
        elif config is None:
            base = {}
        elif isinstance(config, Mapping):
            base = dict(config)
        elif isinstance(config, (str, Path)) and str(config) in cls.PRESETS:
            base = dict(cls.PRESETS[str(config)])
        elif isinstance(config, (str, Path)) and str(config).endswith((".yaml", ".yml", ".json")):
            path = Path(config)
            if not path.is_file():
                raise ConfigError(f"{cls.__name__}: config file {path} does not exist")
            base = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if not isinstance(base, Mapping):
                raise ConfigError(f"{path}: expected a mapping of options, got {type(base).__name__}")
        else:
            known = ", ".join(sorted(cls.PRESETS)) or "none"
            raise ConfigError(f"{cls.__name__}: unknown preset {config!r} (presets: {known})")
        return cls.from_dict({**base, **overrides})

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"{cls.__name__}: unknown option(s) {', '.join(unknown)}; "
                f"valid options: {', '.join(sorted(names))}"
            )
        return cls(**data)

    @classmethod
    def from_yaml(cls: type[C], text: str) -> C:
        data = yaml.safe_load(text) or {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{cls.__name__}: YAML must be a mapping of options")
        return cls.from_dict(data)

    def replace(self: C, **overrides: Any) -> C:
        return type(self).from_dict({**self.to_dict(), **overrides})

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-safe dict (tuples become lists)."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def describe(cls) -> dict[str, str]:
        """{option: description} for `--help` texts and docs."""
        return {f.name: f.metadata.get("doc", "") for f in dataclasses.fields(cls)}


# ---------------------------------------------------------------------- the pipeline's configs
@dataclasses.dataclass(frozen=True)
class VocabSearchConfig(Config):
    """UniBridge Algorithm 1: SentencePiece-unigram size search with the ALP criterion."""

    start: int = field(7000, low=8, doc="first vocabulary size tried (v_i)")
    step: int = field(1000, low=1, doc="size increment (delta)")
    max_size: int = field(60000, low=8, doc="largest size tried (v_m)")
    epsilon: float = field(5.0, low=0.0, doc="stop when ALP(v) - ALP(v - step) < epsilon")
    fixed_size: int | None = field(
        None, low=8, doc="skip the search and use this size (paper ablation: 10000)"
    )
    character_coverage: float = field(
        1.0, low=0.5, high=1.0, doc="SentencePiece character coverage (1.0 as UniBridge; 0.9995 for CJK)"
    )
    seed: int = field(0, low=0, doc="random seed")

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "unibridge": {},
        "fixed-10k": {"fixed_size": 10000},
    }

    def validate(self) -> None:
        if self.start > self.max_size:
            raise ConfigError(f"VocabSearchConfig: start ({self.start}) > max_size ({self.max_size})")


@dataclasses.dataclass(frozen=True)
class LanguageAdapterConfig(Config):
    """Language adapter (MAD-X style, invertible + bottleneck) trained with MLM + beta * KL."""

    reduction_factor: int = field(2, low=1, doc="bottleneck reduction (UniBridge: 2)")
    invertible: bool = field(True, doc="add an invertible adapter on the embeddings")
    leave_out: tuple[int, ...] = field((), doc="layer indices without an adapter")
    mlm_probability: float = field(0.15, low=0.0, high=1.0, doc="fraction of tokens masked")
    kl_weight: float = field(1.0, low=0.0, doc="beta: weight of KL(reference || adapted); 0 = ablation")
    kl_temperature: float = field(1.0, low=1e-6, doc="temperature of the softmax over hidden dimensions")
    train_embeddings: bool = field(True, doc="train the (new) embedding matrix along with the adapter")

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "unibridge": {},
        "madx": {"kl_weight": 0.0, "train_embeddings": False},
        "no-kl": {"kl_weight": 0.0},
    }


@dataclasses.dataclass(frozen=True)
class TaskAdapterConfig(Config):
    """Task adapter stacked on a language adapter, optionally with an adversarial language head.

    The adversarial defaults are documented in `crossling.adversarial`: Keung et al. (2019) give the
    discriminator and the generator their own optimisers and learning rates (their NER setting: task
    6e-6, generator 6e-8 = task / 100, discriminator 5e-4, all constant); `grl` and `loss-reversal`
    train the discriminator with `adv_discriminator_lr` inside the task optimiser.
    """

    task: Literal["ner", "pos", "nli", "paraphrase"] = field("ner", doc="task type")
    reduction_factor: int = field(16, low=1, doc="bottleneck reduction (MAD-X / UniBridge: 16)")
    mode: Literal["adapter", "madx", "finetune"] = field("adapter", doc="what is trained")
    adversarial: Literal["none", "keung", "grl", "loss-reversal"] = field(
        "none", doc="language-adversarial method"
    )
    adversarial_weight: float = field(0.1, low=0.0, doc="lambda of the adversarial term (grl, loss-reversal)")
    label_all_subwords: bool = field(False, doc="tagging: label every subword, not just the first")
    adv_classes: Literal["auto", "binary", "languages"] = field(
        "auto",
        doc="discriminator targets: source-vs-other (Keung) or one class per language (UniBERT); "
        "auto = binary for keung, languages otherwise",
    )
    adv_discriminator_lr: float = field(
        5e-4, low=0.0, doc="learning rate of the language discriminator (Keung et al.'s NER setting: 5e-4)"
    )
    adv_generator_lr: float | None = field(
        None,
        low=0.0,
        doc="keung: learning rate of the generator update (default: the task learning rate / 100, "
        "the ratio of Keung et al.'s NER setting, 6e-8 vs 6e-6)",
    )
    adv_batch_size: int = field(0, low=0, doc="sentences per discriminator batch (0: the task batch size)")
    adv_hidden_size: int = field(0, low=0, doc="discriminator hidden width (0: the model's hidden size)")

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "unibridge": {},
        "madx": {"mode": "madx"},
        "finetune": {"mode": "finetune"},
        "keung": {"adversarial": "keung"},
    }

    def validate(self) -> None:
        if self.label_all_subwords and self.task not in ("ner", "pos"):
            raise ConfigError("TaskAdapterConfig: label_all_subwords only applies to ner and pos")
        if self.mode == "madx" and self.reduction_factor != 16:
            raise ConfigError(
                "TaskAdapterConfig: mode 'madx' is the plain MAD-X setting (reduction_factor 16); "
                "use mode 'adapter' for another reduction factor"
            )

    def generator_lr(self, task_learning_rate: float) -> float:
        """Keung's generator learning rate, with the default resolved against the task's."""
        return self.adv_generator_lr if self.adv_generator_lr is not None else task_learning_rate / 100

    @property
    def discriminator_classes(self) -> str:
        """'binary' or 'languages', with 'auto' resolved for the chosen method."""
        if self.adv_classes != "auto":
            return self.adv_classes
        return "binary" if self.adversarial == "keung" else "languages"


HARMONY_STRATEGIES = ("harmony", "best")  # the strategies that compute harmony weights


@dataclasses.dataclass(frozen=True)
class HarmonyConfig(Config):
    """Harmony weights of UniBridge section 2.4: softmax over inverse mean L2 distances."""

    num_parallel: int = field(10, low=1, doc="K parallel sentences per language pair")
    temperature: float = field(1.0, low=1e-6, doc="tau of softmax(d / tau); 1 is the paper")
    strategy: Literal["harmony", "uniform", "best", "english", "given"] = field("harmony", doc="combination")


# Fields added after recipe stage keys and distillation run signatures were first written: at these
# defaults they are left out of both, so a cache or a checkpointed run made before the field existed
# stays valid (any other value still counts).
NEW_FIELD_DEFAULTS: dict[str, Any] = {"precision": "fp32"}


def without_new_defaults(value: Any) -> Any:
    """`value` (nested dicts and lists) without the keys of NEW_FIELD_DEFAULTS at their default."""
    if isinstance(value, dict):
        return {
            k: without_new_defaults(v)
            for k, v in value.items()
            if not (k in NEW_FIELD_DEFAULTS and v == NEW_FIELD_DEFAULTS[k])
        }
    if isinstance(value, list | tuple):
        return [without_new_defaults(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True)
class TrainingConfig(Config):
    """Optimisation settings shared by every training command; `budget` presets size a run."""

    learning_rate: float = field(1e-4, low=0.0, doc="peak learning rate")
    batch_size: int = field(16, low=1, doc="sentences per device batch")
    gradient_accumulation_steps: int = field(1, low=1, doc="batches per optimiser step")
    max_steps: int = field(-1, low=-1, doc="stop after this many optimiser steps (-1: use epochs)")
    epochs: float = field(1.0, low=0.0, doc="passes over the data when max_steps is -1")
    max_length: int = field(128, low=8, doc="maximum tokens per sequence")
    warmup_ratio: float = field(0.0, low=0.0, high=1.0, doc="fraction of steps of linear warm-up")
    weight_decay: float = field(0.0, low=0.0, doc="AdamW weight decay")
    max_grad_norm: float = field(1.0, low=0.0, doc="gradient clipping")
    save_steps: int = field(500, low=1, doc="checkpoint every N steps (resume with --resume)")
    eval_steps: int = field(500, low=1, doc="evaluate every N steps")
    seed: int = field(42, low=0, doc="random seed")
    precision: Literal["fp32", "bf16", "auto"] = field(
        "fp32",
        doc="bf16: matrix products in bfloat16 under autocast (weights, optimiser and losses stay "
        "fp32); faster on CPUs with AMX or AVX-512 BF16 and on recent GPUs, much slower elsewhere. "
        "auto: bf16 where this machine runs it natively, else fp32 (resolved when the config is built)",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        # "auto" is resolved here, not when training starts, so that what a saved config or a recipe's
        # stage key records is the precision that ran: on a CPU with native bf16 an "auto" stage has
        # the key of an explicit "bf16" one, elsewhere that of "fp32".
        if self.precision == "auto":
            from crossling.training_utils import native_precision

            object.__setattr__(self, "precision", native_precision())

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        # minutes on a laptop CPU with tiny models: what CI runs
        "smoke": {"max_steps": 20, "batch_size": 8, "save_steps": 10, "eval_steps": 10, "max_length": 64},
        # the real base model sized for 2 CPU cores and an hour or so
        "cpu": {"max_steps": 600, "batch_size": 16, "save_steps": 200, "eval_steps": 200},
        # the papers' settings (UniBridge language adapters: 100k steps, lr 1e-4, batch 64 via accumulation)
        "paper": {
            "max_steps": 100_000,
            "batch_size": 16,
            "gradient_accumulation_steps": 4,
            "save_steps": 5000,
        },
    }


BUDGETS = tuple(TrainingConfig.PRESETS)
