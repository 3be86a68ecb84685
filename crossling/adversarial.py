"""Language-adversarial training of task adapters: a language discriminator on mean-pooled final
hidden states, and three ways of making the encoder fool it.

Methods (`TaskAdapterConfig.adversarial`):

``keung``
    Keung, Lu & Bhardwaj (2019), Algorithm 1: for every batch, in turn,
    (1) a discriminator update — the discriminator D learns to tell the languages apart, with the
    encoder fixed (its features computed under ``no_grad``);
    (2) a generator update — the encoder-side trainable parameters G (here: the task adapter; in
    ``finetune`` mode the whole encoder) minimise D's loss on *flipped* labels, D and the task head
    untouched;
    (3) the task update — task adapter and head minimise the task loss (the Trainer's optimiser).
    Each update has its own optimiser and learning rate (`adv_discriminator_lr`,
    `adv_generator_lr`, the training learning rate); see "Learning rates" below.
``grl``
    Gradient reversal (Ganin & Lempitsky 2015): loss = task + L_D(D(R_λ(h))), where R_λ is the
    identity forward and multiplies the gradient by −λ backward. One optimiser (D in its own group
    with `adv_discriminator_lr`).
``loss-reversal``
    UniBERT (Avram et al. 2025) writes the encoder's objective as task − λ·L_D. Minimising that
    over D as well would train D to be *wrong*, so D is trained on its own loss through detached
    features, and the −λ·L_D term reaches the encoder through a copy of D whose weights are detached:
    total = task + L_D(D(sg(h))) − λ·L_D(sg(D)(h)).

Deliberate differences from the papers, and why:

* Features are the mean-pooled final hidden states of the model as trained (language adapter +
  task adapter active) for every task, NER included; Keung et al. pool differently per task.
* The discriminator sees its own batch each step: half sentences of the labelled source data (their
  text only), half unlabelled sentences of the other languages, a language drawn uniformly per
  sentence. Keung et al. pair the labelled English batch with an unlabelled batch. Ours keeps the
  discriminator batch independent of the task (sentence pairs would otherwise give the source side
  away by its format), and is a pure function of the step, so resumed runs see the same batches.
* All text runs through the source LanguagePack's model (one encoder for every language, as the
  single mBERT of Keung et al.); target LanguagePacks are not involved in training.
* Discriminator: two-layer MLP (hidden → hidden, ReLU, dropout 0.1 → classes). ``binary`` targets
  are source (0) vs other (1) as Keung et al.; ``languages`` gives one class per language (UniBERT).
  The generator's "flipped labels" need two classes; with one class per language the generator
  instead pushes D's prediction towards the uniform distribution (cross-entropy to uniform).
* Learning rates. Keung et al.'s NER setting fine-tunes all of mBERT with constant rates: task 6e-6,
  generator 6e-8 (task / 100), discriminator 5e-4. Our defaults keep the discriminator's 5e-4 and the
  generator's ratio: generator = task learning rate / 100 unless `adv_generator_lr` is given, so
  ``--mode finetune --lr 6e-6`` gives the paper's three rates, and adapters (task lr 1e-4 by
  default) get 1e-6. D and G use constant rates, as in the paper; the task rate follows the
  Trainer's schedule (linear decay). A generator rate
  near the task rate lets the generator collapse the pooled states until the task suffers: in our
  PAN-X runs with both at 1e-3, English dev F1 fell from 0.71 to 0.29. `grl` and `loss-reversal`
  use lambda = 0.1 (UniBERT weighs its adversarial term 0.1).
* `grl` and `loss-reversal` give identical gradients on the same batch (a property of the maths, kept
  as two options because the papers present them so); their logged objectives differ.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from crossling.errors import CrosslingError

METHODS = ("none", "keung", "grl", "loss-reversal")


# ---------------------------------------------------------------------- gradient reversal
class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.weight * grad, None


def grad_reverse(x: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
    """Identity forward; multiplies the incoming gradient by −`weight` backward."""
    return _GradientReversal.apply(x, weight)


class GradientReversal(nn.Module):
    """`grad_reverse` as a layer."""

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad_reverse(x, self.weight)


# ---------------------------------------------------------------------- discriminator
class LanguageDiscriminator(nn.Module):
    """Two-layer MLP from a pooled sentence vector to language logits."""

    def __init__(self, hidden_size: int, num_classes: int, inner_size: int = 0, dropout: float = 0.1):
        super().__init__()
        inner = inner_size or hidden_size
        self.net = nn.Sequential(
            nn.Linear(hidden_size, inner), nn.ReLU(), nn.Dropout(dropout), nn.Linear(inner, num_classes)
        )
        self.num_classes = num_classes

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def discriminator_loss(logits: torch.Tensor, languages: torch.Tensor) -> torch.Tensor:
    """L_D: cross-entropy of the true language classes."""
    return F.cross_entropy(logits, languages)


def generator_loss(logits: torch.Tensor, languages: torch.Tensor) -> torch.Tensor:
    """L_G: with two classes, cross-entropy of the flipped labels (Keung et al.); with more, the
    cross-entropy to the uniform distribution (one class per language has no single 'flip')."""
    if logits.shape[-1] == 2:
        return F.cross_entropy(logits, 1 - languages)
    return -F.log_softmax(logits, dim=-1).mean()


def loss_reversal_objective(
    discriminator: nn.Module, features: torch.Tensor, languages: torch.Tensor, weight: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(term to add to the task loss, L_D): L_D(D(sg(h))) − λ·L_D(sg(D)(h)).

    The first part trains D only; the second reaches only the encoder, with the sign of
    UniBERT's ``task − λ·L_adv``.
    """
    d_loss = discriminator_loss(discriminator(features.detach()), languages)
    frozen = {name: p.detach() for name, p in discriminator.named_parameters()}
    fooled = discriminator_loss(torch.func.functional_call(discriminator, frozen, (features,)), languages)
    return d_loss - weight * fooled, d_loss


def grl_objective(
    discriminator: nn.Module, features: torch.Tensor, languages: torch.Tensor, weight: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(term to add to the task loss, L_D): L_D(D(R_λ(h)))."""
    d_loss = discriminator_loss(discriminator(grad_reverse(features, weight)), languages)
    return d_loss, d_loss


# ---------------------------------------------------------------------- Keung et al., Algorithm 1
def _sync(grads: Sequence[torch.Tensor | None]) -> None:
    """Average gradients over data-parallel processes (the updates here bypass DDP's own hooks)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        world = dist.get_world_size()
        for g in grads:
            if g is not None:
                dist.all_reduce(g)
                g.div_(world)


def apply_gradients(
    params: Sequence[nn.Parameter],
    grads: Sequence[torch.Tensor | None],
    optimizer: torch.optim.Optimizer,
    max_grad_norm: float = 0.0,
) -> None:
    """One step of `optimizer` with `grads`, leaving any gradients already accumulated in
    `.grad` (the task update's, under gradient accumulation) as they were."""
    _sync(grads)
    saved = [p.grad for p in params]
    for p, g in zip(params, grads, strict=True):
        p.grad = g
    live = [p for p in params if p.grad is not None]
    if max_grad_norm and live:
        torch.nn.utils.clip_grad_norm_(live, max_grad_norm)
    optimizer.step()
    for p, s in zip(params, saved, strict=True):
        p.grad = s


def discriminator_update(
    encode: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    discriminator: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: dict[str, torch.Tensor],
    languages: torch.Tensor,
    max_grad_norm: float = 0.0,
) -> dict[str, float]:
    """Algorithm 1, step 1: D learns to tell the languages apart; the encoder is fixed (no_grad)."""
    d_params = [p for p in discriminator.parameters() if p.requires_grad]
    with torch.no_grad():
        features = encode(inputs)
    logits = discriminator(features)
    d_loss = discriminator_loss(logits, languages)
    _check_finite(d_loss, "discriminator")
    grads = torch.autograd.grad(d_loss, d_params)
    apply_gradients(d_params, grads, optimizer, max_grad_norm)
    accuracy = (logits.argmax(-1) == languages).float().mean().item()
    return {"disc_loss": d_loss.item(), "disc_acc": accuracy}


def generator_update(
    encode: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    discriminator: nn.Module,
    generator_params: Sequence[nn.Parameter],
    optimizer: torch.optim.Optimizer,
    inputs: dict[str, torch.Tensor],
    languages: torch.Tensor,
    max_grad_norm: float = 0.0,
) -> dict[str, float]:
    """Algorithm 1, step 2: the encoder-side parameters learn to fool D (flipped labels).

    Only `generator_params` are differentiated and stepped: D's weights, the task head and every
    frozen weight stay as they are.
    """
    g_loss = generator_loss(discriminator(encode(inputs)), languages)
    _check_finite(g_loss, "generator")
    grads = torch.autograd.grad(g_loss, list(generator_params), allow_unused=True)
    apply_gradients(generator_params, grads, optimizer, max_grad_norm)
    return {"gen_loss": g_loss.item()}


def keung_updates(
    encode: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    discriminator: nn.Module,
    generator_params: Sequence[nn.Parameter],
    discriminator_optimizer: torch.optim.Optimizer,
    generator_optimizer: torch.optim.Optimizer,
    inputs: dict[str, torch.Tensor],
    languages: torch.Tensor,
    max_grad_norm: float = 0.0,
) -> dict[str, float]:
    """Steps 1 and 2 of Keung et al.'s Algorithm 1 on one discriminator batch (step 3, the task
    update, is the Trainer's). `encode(inputs)` returns pooled features [batch, hidden]."""
    parts = discriminator_update(
        encode, discriminator, discriminator_optimizer, inputs, languages, max_grad_norm
    )
    parts.update(
        generator_update(
            encode, discriminator, generator_params, generator_optimizer, inputs, languages, max_grad_norm
        )
    )
    return parts


class DivergenceError(CrosslingError):
    """A loss became NaN or infinite."""


def _check_finite(loss: torch.Tensor, what: str) -> None:
    if not torch.isfinite(loss):
        raise DivergenceError(f"the {what} loss is {float(loss)}")


# ---------------------------------------------------------------------- discriminator batches
@dataclass
class AdversarialData:
    """Encoded sentences per language for the discriminator; index 0 is the source language.

    `batch(key)` is a pure function of `key` (the step), so a resumed run draws the same batches.
    """

    languages: list[str]
    pools: list[list[dict[str, list[int]]]]
    classes: str  # "binary" | "languages"
    batch_size: int
    seed: int = 0
    truncated: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.languages) < 2:
            raise CrosslingError(
                "adversarial training needs unlabelled text of at least one language besides the "
                f"source ({self.languages[0] if self.languages else '?'}): pass --adv-unlabelled LANG=FILE"
            )
        for lang, pool in zip(self.languages, self.pools, strict=True):
            if not pool:
                raise CrosslingError(f"adversarial training: no usable sentence for language {lang!r}")
        if self.classes not in ("binary", "languages"):
            raise CrosslingError(f"unknown discriminator classes {self.classes!r}")

    @property
    def num_classes(self) -> int:
        return 2 if self.classes == "binary" else len(self.languages)

    def batch(self, key: int) -> tuple[list[dict[str, list[int]]], torch.Tensor]:
        rng = random.Random(f"{self.seed}/{key}")
        half = max(1, self.batch_size // 2)
        features, langs = [], []
        for _ in range(half):
            features.append(rng.choice(self.pools[0]))
            langs.append(0)
        for _ in range(max(1, self.batch_size - half)):
            lang = rng.randrange(1, len(self.languages))
            features.append(rng.choice(self.pools[lang]))
            langs.append(lang if self.classes == "languages" else 1)
        return features, torch.tensor(langs, dtype=torch.long)

    def report(self) -> dict[str, Any]:
        return {
            "languages": self.languages,
            "classes": self.classes,
            "sentences": {lang: len(pool) for lang, pool in zip(self.languages, self.pools, strict=True)},
            "truncated": self.truncated,
            "batch_size": self.batch_size,
        }
