"""UniBERT-style distillation of a compact multilingual encoder (Avram et al., 2025; DESIGN.md point 6).

    from crossling.distill import distill, DistillConfig, distill_training_config
    student = distill(
        "intfloat/multilingual-e5-small",
        {"en": "en.txt", "es": "es.txt", "gn": "gn.txt"},
        "students/xxs",
        config=DistillConfig.load("unibert", size="xxsmall"),
        training=distill_training_config("cpu"),
    )

What follows the paper: BERT students of 4x128 (4 heads), 4x256 (8) and 6x512 (8) with the teacher's
vocabulary; the encoder minimises 0.5 * MLM (15% masking, label smoothing 0.1) - 0.1 * L_adv + 0.4 * KD
(temperature 2); the language discriminator is one feed-forward (linear) layer on mean-pooled student
states, trained to minimise L_adv ("loss reversal"); AdamW with weight decay 0.01, a linear schedule with
warm-up, gradient clipping at 5; UniBERT's corpus-cleaning heuristics (crossling.data.cleaning).

Deliberate deviations and choices the paper leaves open (each also recorded in the student's
crossling.json, so a result says how it was made):

1. Embedding initialisation: the student's word, position and token-type embeddings start as the
   teacher's, projected to the student's width by an uncentred truncated SVD (`student`); transformer
   layers start random. We found no teacher initialisation described in the paper; we use one so that a
   CPU budget of a few hundred steps starts from meaningful token geometry. `embedding_init="random"`
   is BERT's initialisation.
2. KD without a teacher MLM head (multilingual-e5-small has none): cosine distance between the
   student's final states, mapped to the teacher's width by a learned linear projection (initialised
   with the SVD basis), and the teacher's final states centred on their corpus mean, half per token and
   half mean-pooled (`losses.hidden_distillation_loss`). We chose this over fitting an MLM head to the
   teacher first: it needs no extra training stage and distils the sentence states that e5 was trained
   to make meaningful. With a teacher MLM head, KD is the paper's T^2-scaled KL at temperature 2.
3. Logit KD and MLM are computed at the masked positions only (as DistilBERT), never on a
   [batch, length, 250k] tensor; teacher and student see the same masked input.
4. Loss reversal is implemented with detached copies so that one backward pass and one AdamW step give
   the encoder -0.1 * grad L_adv and the discriminator +grad L_adv (`losses.training_objective`);
   `discriminator_lr_multiplier` (default 1, one learning rate as in the paper) and
   `discriminator_hidden` (default 0, a linear layer) are our knobs.
5. Settings the paper does not state: peak learning rate 5e-4 and 6% warm-up (`config`), language
   sampling p_l ~ n_l^0.3 (XLM-R's exponent; `sampling_alpha`), duplicate lines dropped, a held-out
   slice per language for the report (`eval_lines`).
6. `tie_decoder=False` (`--untie-decoder`, ours; default tied as in BERT and the paper) gives the MLM
   head its own output matrix so that embeddings of tokens the corpus never shows stay as projected
   (see `student`). Such a student is saved untied. Caveat: with a new vocabulary, crossling.language
   resizes an untied decoder but does not re-initialise its rows for the new tokens, so use a tied
   student (the default) for `adapt` with a new vocabulary; with the base vocabulary either works.
7. Scale: the paper trains on Wikipedia in 107 languages on GPUs; here budgets (`--budget smoke|cpu|
   paper`) size the run, and `torchrun` runs the same code data-parallel.

Modules: `config` (sizes, weights, budgets), `losses` (one pure function per loss term and the
combined objective), `student` (teacher loading, student construction, embedding projection),
`corpus` (reading, cleaning, language-balanced sampling), `model` (the trained module), `train`
(Trainer, checkpoints, evaluation), `pipeline` (`distill`, the output directory, resume guards).

Names are imported lazily, so `crossling --help` does not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DISTILL_TRAINING_DEFAULTS": "config",
    "STUDENT_SIZES": "config",
    "DistillConfig": "config",
    "StudentSize": "config",
    "distill_training_config": "config",
    "balanced_sample": "corpus",
    "parse_corpus_specs": "corpus",
    "sampling_probabilities": "corpus",
    "discriminator_loss": "losses",
    "hidden_distillation_loss": "losses",
    "logit_distillation_loss": "losses",
    "masked_lm_loss": "losses",
    "training_objective": "losses",
    "DistilledStudent": "pipeline",
    "distill": "pipeline",
    "project_embeddings": "student",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"crossling.distill.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'crossling.distill' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
