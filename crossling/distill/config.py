"""Configuration of a UniBERT-style distillation: student sizes, loss weights, sampling, budgets.

The defaults are those of Avram et al. (2025), "UniBERTs: Adversarial Training for Language-Universal
Representations", as far as the paper states them:

    L_encoder = 0.5 * L_MLM  -  0.1 * L_adv  +  0.4 * L_KD        (KD at temperature T = 2)

with 15% masking and label smoothing 0.1 on the MLM cross-entropy, AdamW with weight decay 0.01,
a linear schedule with warm-up and gradient clipping at 5. Settings the paper does not fix and that
we had to choose are marked "our choice" in the field descriptions.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

from crossling.config import Config, ConfigError, TrainingConfig, field


@dataclasses.dataclass(frozen=True)
class StudentSize:
    """Shape of a student encoder (BERT): layers x hidden width x attention heads."""

    layers: int
    hidden: int
    heads: int
    intermediate: int = 0  # 0: 4 x hidden, BERT's ratio

    @property
    def feed_forward(self) -> int:
        return self.intermediate or 4 * self.hidden

    def to_dict(self) -> dict[str, int]:
        return {
            "layers": self.layers,
            "hidden": self.hidden,
            "heads": self.heads,
            "intermediate": self.feed_forward,
        }


# The paper's three students. Every one keeps the teacher's vocabulary: with XLM-R's 250k tokens the
# embedding matrix alone is 250k x 128 = 32M parameters for xxsmall (most of the model), 64M for
# xsmall and 128M for small; the transformer layers are 0.8M, 3.2M and 18.9M.
STUDENT_SIZES: dict[str, StudentSize] = {
    "xxsmall": StudentSize(layers=4, hidden=128, heads=4),
    "xsmall": StudentSize(layers=4, hidden=256, heads=8),
    "small": StudentSize(layers=6, hidden=512, heads=8),
}

# Optimisation settings of the paper that differ from crossling's shared TrainingConfig defaults;
# they are applied on top of a --budget preset and under the user's own overrides.
DISTILL_TRAINING_DEFAULTS: dict[str, Any] = {
    "weight_decay": 0.01,
    "max_grad_norm": 5.0,
    # our choice: the paper uses a linear schedule with warm-up but we could not find the ratio or the
    # peak learning rate; 6% warm-up and 5e-4 are RoBERTa's / small-BERT pre-training values.
    "warmup_ratio": 0.06,
    "learning_rate": 5e-4,
}


def distill_training_config(budget: str = "cpu", **overrides: Any) -> TrainingConfig:
    """The TrainingConfig of a distillation run: `budget` preset + the paper's optimiser + `overrides`."""
    return TrainingConfig.load(budget, **{**DISTILL_TRAINING_DEFAULTS, **overrides})


@dataclasses.dataclass(frozen=True)
class DistillConfig(Config):
    """Student shape, objective and data sampling of `crossling distill` (see the module docstring)."""

    size: Literal["xxsmall", "xsmall", "small"] = field(
        "xxsmall", doc="student size preset (layers x hidden)"
    )
    num_layers: int = field(0, low=0, doc="override the preset's layers (0: from size)")
    hidden_size: int = field(0, low=0, doc="override the preset's hidden width (0: from size)")
    num_heads: int = field(0, low=0, doc="override the preset's attention heads (0: from size)")
    intermediate_size: int = field(0, low=0, doc="feed-forward width (0: 4 x hidden)")
    max_positions: int = field(512, low=8, doc="position embeddings of the student (capped by the teacher's)")

    mlm_weight: float = field(0.5, low=0.0, doc="weight of the masked-LM loss (paper: 0.5)")
    adversarial_weight: float = field(
        0.1, low=0.0, doc="lambda: the encoder subtracts lambda * L_adv (paper: 0.1; 0 = ablation)"
    )
    kd_weight: float = field(0.4, low=0.0, doc="weight of the distillation loss (paper: 0.4)")
    mlm_probability: float = field(0.15, low=0.0, high=1.0, doc="fraction of tokens masked (paper: 0.15)")
    label_smoothing: float = field(0.1, low=0.0, high=1.0, doc="label smoothing of the MLM loss (paper: 0.1)")
    kd_temperature: float = field(2.0, low=1e-6, doc="softmax temperature of logit distillation (paper: 2)")
    kd_mode: Literal["auto", "logits", "hidden"] = field(
        "auto",
        doc="logits: KL to the teacher's MLM distribution; hidden: cosine to its hidden states through a "
        "learned projection (for teachers without an MLM head); auto: logits when the teacher has a head",
    )
    kd_token_weight: float = field(
        0.5,
        low=0.0,
        high=1.0,
        doc="hidden KD (our choice): share of the per-token term; the rest matches mean-pooled states",
    )
    discriminator_lr_multiplier: float = field(
        1.0,
        low=0.0,
        doc="discriminator learning rate = this x the encoder's (1: one optimiser for both, the paper's "
        "reading)",
    )
    discriminator_hidden: int = field(
        0, low=0, doc="hidden width of the language discriminator (0: one linear layer, the paper's)"
    )
    embedding_init: Literal["svd", "random"] = field(
        "svd",
        doc="svd (our choice): teacher embeddings projected on their top singular directions; "
        "random: BERT init",
    )

    tie_decoder: bool = field(
        True,
        doc="tie the MLM decoder to the input embeddings (BERT, the paper); false keeps the teacher's "
        "geometry of tokens absent from the corpus (see crossling.distill.student)",
    )

    sampling_alpha: float = field(
        0.3,
        low=0.0,
        high=1.0,
        doc="language sampling exponent, p_l ~ n_l^alpha (our choice: XLM-R's 0.3; 1 = proportional, "
        "0 = uniform)",
    )
    max_lines_per_language: int = field(0, low=0, doc="use at most this many lines per language (0: all)")
    eval_lines: int = field(100, low=0, doc="lines per language held out for the evaluation report")
    clean: bool = field(True, doc="clean the corpus with crossling.data.cleaning (UniBERT's heuristics)")

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "unibert": {},
        "no-adv": {"adversarial_weight": 0.0},  # the paper's ablation: -0.1 * L_adv removed
        "mlm-only": {"adversarial_weight": 0.0, "kd_weight": 0.0, "mlm_weight": 1.0},
    }

    def validate(self) -> None:
        shape = self.student
        if shape.hidden % shape.heads:
            raise ConfigError(
                f"DistillConfig: hidden size {shape.hidden} is not divisible by {shape.heads} attention heads"
            )
        if self.mlm_weight == 0 and self.kd_weight == 0:
            raise ConfigError(
                "DistillConfig: mlm_weight and kd_weight are both 0: nothing would train the encoder"
            )

    @property
    def student(self) -> StudentSize:
        """The student's shape: the size preset with any explicit overrides applied."""
        base = STUDENT_SIZES[self.size]
        return StudentSize(
            layers=self.num_layers or base.layers,
            hidden=self.hidden_size or base.hidden,
            heads=self.num_heads or base.heads,
            intermediate=self.intermediate_size,
        )

    @property
    def size_name(self) -> str:
        """The preset name, or "custom" when the shape was overridden."""
        custom = self.num_layers or self.hidden_size or self.num_heads or self.intermediate_size
        return "custom" if custom else self.size
