"""The module that training optimises: student + language discriminator + KD projection, with the
frozen teacher beside it (not registered as a submodule, so it is neither optimised, checkpointed nor
wrapped by DDP).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from crossling.distill.config import DistillConfig
from crossling.distill.losses import (
    discriminator_loss,
    hidden_distillation_loss,
    logit_distillation_loss,
    masked_lm_loss,
    training_objective,
)
from crossling.language import mean_pool, mlm_head


class LanguageDiscriminator(nn.Module):
    """Predicts the language of each sentence from its mean-pooled student states.

    The paper's discriminator is "a feed-forward layer": with `hidden == 0` it is one linear layer
    (hidden -> n_languages); `hidden > 0` inserts a tanh hidden layer.
    """

    def __init__(self, width: int, n_languages: int, hidden: int = 0):
        super().__init__()
        if hidden:
            self.layers = nn.Sequential(nn.Linear(width, hidden), nn.Tanh(), nn.Linear(hidden, n_languages))
        else:
            self.layers = nn.Sequential(nn.Linear(width, n_languages))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.layers(pooled)


class DistillationModel(nn.Module):
    """Computes every loss term of one batch; `forward` returns them with the combined objective.

    `kd_mode` is "logits" (teacher MLM distribution at the masked positions) or "hidden" (teacher final
    states through `projection`). The discriminator exists only with two or more languages.

    Deliberate deviation: logit KD (like the MLM loss) is computed at the masked positions only, as in
    DistilBERT. With the teacher's 250k vocabulary, logits at every position would be a
    [batch, length, 250k] tensor for each model (about 1 GB per model at batch 16 x 64 tokens), which
    would dominate a CPU step; the masked positions are where the two distributions carry the most
    information anyway (elsewhere both mostly copy the input token).
    """

    def __init__(
        self,
        student: Any,
        teacher: Any,
        config: DistillConfig,
        *,
        languages: list[str],
        kd_mode: str,
        projection_init: torch.Tensor | None = None,
    ):
        super().__init__()
        self.student = student
        object.__setattr__(self, "teacher", teacher)  # deliberately not a submodule
        self.distill_config = config
        self.languages = list(languages)
        self.kd_mode = kd_mode
        width = student.config.hidden_size
        self.discriminator = (
            LanguageDiscriminator(width, len(languages), config.discriminator_hidden)
            if len(languages) >= 2
            else None
        )
        self.projection = None
        if kd_mode == "hidden":
            teacher_width = teacher.config.hidden_size
            # the teacher's mean token and sentence states, the centres of the KD targets (see
            # losses.hidden_distillation_loss); buffers, so checkpoints and --resume keep them
            self.register_buffer("teacher_token_mean", torch.zeros(teacher_width))
            self.register_buffer("teacher_pooled_mean", torch.zeros(teacher_width))
            self.projection = nn.Linear(width, teacher_width)
            if projection_init is not None:  # V [H_t, H_s]: student states h map back as h V^T
                with torch.no_grad():
                    self.projection.weight.copy_(projection_init.to(self.projection.weight.dtype))
                    self.projection.bias.zero_()

    def teacher_forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The teacher's final hidden states [batch, length, H_t], without gradient, in eval mode."""
        self.teacher.eval()
        if next(self.teacher.parameters()).device != input_ids.device:  # Trainer moves only what it sees
            self.teacher.to(input_ids.device)
        with torch.no_grad():
            return self.teacher.base_model(
                input_ids=input_ids, attention_mask=attention_mask
            ).last_hidden_state

    def calibrate(self, batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        """Set the teacher's mean token and sentence states (the KD targets' centres) from `batches`.

        Returns how anisotropic the teacher is: the mean cosine between its sentence vectors and their
        average before centring.
        """
        if self.kd_mode != "hidden" or not batches:
            return {}
        token_sum, n_tokens, pooled_all = 0.0, 0, []
        for batch in batches:
            hidden = self.teacher_forward(batch["input_ids"], batch["attention_mask"]).float()
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            token_sum = token_sum + (hidden * mask).sum((0, 1))
            n_tokens += int(mask.sum())
            pooled_all.append(mean_pool(hidden, batch["attention_mask"]))
        pooled = torch.cat(pooled_all)
        with torch.no_grad():
            self.teacher_token_mean.copy_(token_sum / max(n_tokens, 1))
            self.teacher_pooled_mean.copy_(pooled.mean(0))
        cosine = torch.nn.functional.cosine_similarity(pooled, self.teacher_pooled_mean[None], dim=-1)
        return {"sentences": len(pooled), "mean_cosine_to_average_sentence": round(float(cosine.mean()), 4)}

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor,
        language: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        cfg = self.distill_config
        hidden = self.student.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        masked = labels != -100
        # the MLM head only where a token was masked: [n_masked, vocab] instead of [batch, length, vocab]
        student_logits = mlm_head(self.student)(hidden[masked])
        mlm = masked_lm_loss(student_logits, labels[masked], cfg.label_smoothing)

        # Teacher and student see the same (masked) input, as in DistilBERT: one student pass serves
        # MLM, KD and the discriminator, and the student imitates the teacher on the input it gets.
        teacher_hidden = self.teacher_forward(input_ids, attention_mask) if cfg.kd_weight > 0 else None
        if teacher_hidden is None:
            kd = hidden.sum() * 0.0
        elif self.kd_mode == "logits":
            with torch.no_grad():
                teacher_logits = mlm_head(self.teacher)(teacher_hidden[masked])
            kd = logit_distillation_loss(student_logits, teacher_logits, cfg.kd_temperature)
        else:
            kd = hidden_distillation_loss(
                self.projection(hidden),
                teacher_hidden,
                attention_mask,
                cfg.kd_token_weight,
                teacher_token_mean=self.teacher_token_mean,
                teacher_pooled_mean=self.teacher_pooled_mean,
            )
        if self.projection is not None and teacher_hidden is None:
            kd = kd + 0.0 * sum(p.sum() for p in self.projection.parameters())  # keep DDP's graph complete

        out = {"mlm": mlm, "kd": kd}
        if self.discriminator is not None and language is not None:
            pooled = mean_pool(hidden, attention_mask)
            # same discriminator, two graphs (see losses.training_objective): parameters detached for
            # the encoder's reversed term, features detached for the discriminator's own loss
            frozen = {name: p.detach() for name, p in self.discriminator.named_parameters()}
            adv_for_encoder = discriminator_loss(
                functional_call(self.discriminator, frozen, (pooled,)), language
            )
            disc_logits = self.discriminator(pooled.detach())
            adv_for_discriminator = discriminator_loss(disc_logits, language)
            out["adv"] = adv_for_discriminator
            out["adv_accuracy"] = (disc_logits.argmax(-1) == language).float().mean()
        else:
            adv_for_encoder = adv_for_discriminator = hidden.sum() * 0.0
        out["adv_for_encoder"], out["adv_for_discriminator"] = adv_for_encoder, adv_for_discriminator
        # the paper's L (what the encoder minimises), for logs; "loss" also holds the discriminator's term
        out["encoder_loss"] = (
            cfg.mlm_weight * mlm + cfg.kd_weight * kd - cfg.adversarial_weight * adv_for_encoder
        ).detach()
        out["loss"] = training_objective(
            mlm,
            kd,
            adv_for_encoder,
            adv_for_discriminator,
            mlm_weight=cfg.mlm_weight,
            kd_weight=cfg.kd_weight,
            adversarial_weight=cfg.adversarial_weight,
        )
        return out
