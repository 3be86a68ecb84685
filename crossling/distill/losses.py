"""The loss terms of UniBERT-style distillation, one pure function each.

The paper's objective for the encoder (student) parameters theta_E is

    L = w_mlm * L_MLM  -  lambda * L_adv  +  w_kd * L_KD                 (0.5, 0.1, 0.4)

while the language discriminator's parameters theta_D minimise L_adv itself. `training_objective`
turns both into one scalar whose gradient is exactly that pair, so a single backward pass and a single
optimiser step do the update (see its docstring for why the two adversarial terms are needed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# L_MLM is the language adapters' loss (label-smoothed here), re-exported with the other terms
from crossling.language import masked_lm_loss as masked_lm_loss
from crossling.language import mean_pool


def logit_distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0
) -> torch.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), averaged over positions (Hinton et al.).

    Both are [n, vocab] at the same positions (the masked ones; see `DistillationModel`). The T^2
    factor keeps the gradient's scale independent of T, as in Hinton et al. (2015) and DistilBERT.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits "
            f"{tuple(teacher_logits.shape)} differ: the student must keep the teacher's vocabulary"
        )
    if student_logits.shape[0] == 0:
        return student_logits.sum() * 0.0
    log_p_student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1)
    return kl.mean() * temperature**2


def hidden_distillation_loss(
    student_states: torch.Tensor,
    teacher_states: torch.Tensor,
    attention_mask: torch.Tensor,
    token_weight: float = 0.5,
    *,
    teacher_token_mean: torch.Tensor | None = None,
    teacher_pooled_mean: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cosine distance to the teacher's centred final hidden states, per token and mean-pooled.

    `student_states` are the student's final states already mapped to the teacher's width by the
    learned projection, [batch, length, teacher_hidden]; `teacher_states` the same shape. Returns
    token_weight * mean_tokens(1 - cos(s, t - mu_token)) + (1 - token_weight) *
    mean_sentences(1 - cos(pool(s), pool(t) - mu_pooled)), where the means mu are the teacher's average
    token and sentence states (fixed, estimated on the corpus before training; None = no centring).

    Our choices, for teachers without an MLM head (multilingual-e5-small): cosine rather than MSE so the
    0.4 weight means the same whatever the scale of the teacher's states; a pooled term because
    mean-pooled states are what a sentence encoder like e5 makes meaningful; and centred targets
    because such encoders are anisotropic: any two e5 sentence vectors have a cosine of ~0.7-0.8, so
    against raw targets a student that outputs the average direction for every input already scores
    1 - cos ~ 0.15 and learns little else (we measured exactly that: retrieval fell to chance).
    """
    mask = attention_mask.float()  # a bf16 sum of 5,000 ones is 4,992
    teacher_states = teacher_states.float()
    pooled_teacher = mean_pool(teacher_states, attention_mask)
    if teacher_token_mean is not None:
        teacher_states = teacher_states - teacher_token_mean.float()
    if teacher_pooled_mean is not None:
        pooled_teacher = pooled_teacher - teacher_pooled_mean.float()
    token = 1.0 - F.cosine_similarity(student_states.float(), teacher_states, dim=-1)
    token = (token * mask).sum() / mask.sum().clamp_min(1.0)
    pooled = 1.0 - F.cosine_similarity(
        mean_pool(student_states.float(), attention_mask), pooled_teacher, dim=-1
    )
    return token_weight * token + (1.0 - token_weight) * pooled.mean()


def discriminator_loss(logits: torch.Tensor, languages: torch.Tensor) -> torch.Tensor:
    """L_adv: cross-entropy of the language discriminator's predictions, [batch, n_languages] vs [batch]."""
    return F.cross_entropy(logits.float(), languages)


def training_objective(
    mlm: torch.Tensor,
    kd: torch.Tensor,
    adv_for_encoder: torch.Tensor,
    adv_for_discriminator: torch.Tensor,
    *,
    mlm_weight: float = 0.5,
    kd_weight: float = 0.4,
    adversarial_weight: float = 0.1,
) -> torch.Tensor:
    """One scalar whose gradient updates the encoder and the discriminator as the paper prescribes.

        total = mlm_weight * mlm + kd_weight * kd - adversarial_weight * adv_for_encoder
                + adv_for_discriminator

    `adv_for_encoder` and `adv_for_discriminator` have the same value, L_adv, but different graphs:
    the first is the discriminator applied with *detached* parameters to the pooled student states
    (so it sends gradient only to the encoder), the second is the discriminator applied to *detached*
    pooled states (gradient only to the discriminator). Hence

        d total / d theta_E = d (0.5 L_MLM - 0.1 L_adv + 0.4 L_KD) / d theta_E     (the paper's equation)
        d total / d theta_D = d L_adv / d theta_D                                   (the discriminator learns)

    This is the paper's "loss reversal". A gradient-reversal layer gives the same encoder gradient but
    scales the discriminator's by lambda too (it would learn 10x slower at lambda 0.1), and a second
    optimiser step for the discriminator would use features from before the encoder's update; with
    detached copies one backward pass and one optimiser step are exact and DDP-friendly.

    As in the paper, the encoder *maximises* the discriminator's cross-entropy, which is unbounded
    (it can push states towards confidently wrong languages rather than towards indistinguishable
    ones); the small lambda and the discriminator's own updates keep it in check. The held-out
    discriminator accuracy in the report shows what the game reached.
    """
    return mlm_weight * mlm + kd_weight * kd - adversarial_weight * adv_for_encoder + adv_for_discriminator
