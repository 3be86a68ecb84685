"""Training loop of the distillation on `transformers.Trainer`: data, collation, checkpoints, evaluation.

One optimiser (AdamW) holds the student, the KD projection and the discriminator; the gradient of
`losses.training_objective` already gives each its own update, so one step does both sides of the
adversarial game. Gradient clipping (5.0) applies to their joint norm.
"""

from __future__ import annotations

import logging
import time
import zlib
from pathlib import Path
from typing import Any

import torch

from crossling.errors import CrosslingError
from crossling.training_utils import LossPartsLoggingMixin, last_checkpoint, training_arguments

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"


class DistillCollator:
    """Pads, masks like BERT (15%: 80% [MASK], 10% random token, 10% kept) and adds language ids.

    The masking draws from a generator seeded by `seed` and the indices of the batch's examples, not
    from torch's global RNG: Trainer restores the global RNG on --resume only after it has fetched
    (and so masked) the first resumed batch, so global-RNG masking would make a resumed run differ
    from an uninterrupted one. Masks still change between epochs, because batches are reshuffled.
    """

    def __init__(self, tokenizer: Any, mlm_probability: float, seed: int = 0):
        if tokenizer.mask_token_id is None:
            raise CrosslingError(f"{type(tokenizer).__name__} has no mask token: it cannot be used for MLM")
        self.tokenizer = tokenizer
        self.mlm_probability = mlm_probability
        self.seed = seed

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        from transformers.data.data_collator import pad_without_fast_tokenizer_warning

        batch = pad_without_fast_tokenizer_warning(
            self.tokenizer, [{"input_ids": f["input_ids"]} for f in features], return_tensors="pt"
        )
        input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
        special = torch.tensor(
            [
                self.tokenizer.get_special_tokens_mask(ids, already_has_special_tokens=True)
                for ids in input_ids.tolist()
            ],
            dtype=torch.bool,
        ) | (attention_mask == 0)
        indices = [int(f.get("index", i)) for i, f in enumerate(features)]
        generator = torch.Generator().manual_seed(zlib.crc32(repr((self.seed, indices)).encode()))
        input_ids, labels = mask_tokens(
            input_ids,
            special,
            self.mlm_probability,
            self.tokenizer.mask_token_id,
            len(self.tokenizer),
            generator,
        )
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            "language": torch.tensor([f["language"] for f in features], dtype=torch.long),
        }


def mask_tokens(
    input_ids: torch.Tensor,
    special: torch.Tensor,
    probability: float,
    mask_token_id: int,
    vocab_size: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking, as in transformers' DataCollatorForLanguageModeling: (masked inputs, labels).

    Each non-special token is chosen with `probability`; a chosen token becomes the mask token 80% of
    the time, a random token 10%, and stays itself 10%. Labels are -100 where nothing was chosen.
    """
    input_ids, labels = input_ids.clone(), input_ids.clone()
    chance = torch.full(labels.shape, probability).masked_fill(special, 0.0)
    chosen = torch.bernoulli(chance, generator=generator).bool()
    labels[~chosen] = -100
    to_mask = torch.bernoulli(torch.full(labels.shape, 0.8), generator=generator).bool() & chosen
    input_ids[to_mask] = mask_token_id
    to_random = torch.bernoulli(torch.full(labels.shape, 0.5), generator=generator).bool() & chosen & ~to_mask
    random_tokens = torch.randint(vocab_size, labels.shape, generator=generator)
    input_ids[to_random] = random_tokens[to_random]
    return input_ids, labels


def checkpoint_dir(work_dir: str | Path) -> Path:
    """Where the Trainer's checkpoints of a run with work directory `work_dir` go."""
    return Path(work_dir) / "checkpoints"


def _trainer_class():
    from safetensors.torch import load_model, save_model
    from transformers import Trainer

    class DistillTrainer(LossPartsLoggingMixin, Trainer):
        """`Trainer` for a `DistillationModel`: logs every loss term, checkpoints with safetensors."""

        divergence_message = (
            "distillation diverged ({what}) at step {step}; last good checkpoint: {last}. "
            "Lower the learning rate and --resume."
        )

        def __init__(self, *args: Any, discriminator_lr_multiplier: float = 1.0, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.discriminator_lr_multiplier = discriminator_lr_multiplier

        def create_optimizer(self):
            """AdamW over everything, weight decay off for biases and norms (as Trainer does), with the
            discriminator's groups at `discriminator_lr_multiplier` x the learning rate."""
            if self.optimizer is None:
                decay = set(self.get_decay_parameter_names(self.model))
                groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
                for name, param in self.model.named_parameters():
                    if param.requires_grad:
                        key = (name.startswith("discriminator."), name in decay)
                        groups.setdefault(key, []).append(param)
                optimizer_cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
                self.optimizer = optimizer_cls(
                    [
                        {
                            "params": params,
                            "weight_decay": self.args.weight_decay if decayed else 0.0,
                            "lr": self.args.learning_rate
                            * (self.discriminator_lr_multiplier if discriminator else 1.0),
                        }
                        for (discriminator, decayed), params in sorted(groups.items())
                    ],
                    **kwargs,
                )
            return self.optimizer

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = model(**inputs)
            loss = out["loss"]
            parts = ("encoder_loss", "mlm", "kd", "adv", "adv_accuracy")
            self.record_loss_parts({key: float(out[key].detach()) for key in parts if key in out})
            self.check_finite_loss(loss)
            self.count_tokens(inputs["attention_mask"])
            return (loss, out) if return_outputs else loss

        # The wrapper is not a PreTrainedModel and its MLM decoder is tied to the embeddings, which
        # safetensors.save_file refuses; save_model/load_model store tied tensors once.
        def _save(self, output_dir: str | None = None, state_dict=None) -> None:
            output_dir = output_dir or self.args.output_dir
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            save_model(self.accelerator.unwrap_model(self.model), str(Path(output_dir) / WEIGHTS_FILE))

        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            target = self.accelerator.unwrap_model(model if model is not None else self.model)
            weights = Path(resume_from_checkpoint) / WEIGHTS_FILE
            if not weights.is_file():
                raise CrosslingError(f"checkpoint {resume_from_checkpoint} has no {WEIGHTS_FILE}")
            try:
                load_model(target, str(weights), strict=True)
            except RuntimeError as err:  # another student shape: the run signature should prevent it
                first = str(err).strip().splitlines()[0]
                raise CrosslingError(
                    f"checkpoint {resume_from_checkpoint} does not fit this student ({first}); "
                    "delete the work directory to start again"
                ) from None

    return DistillTrainer


class SampledDataset(torch.utils.data.Dataset):
    """Examples {"input_ids", "language", "index"} for sampled (language, line index) draws.

    Draws are kept as two integer tensors and examples built on access: at the paper budget (100k
    steps x 64 sentences) a list of dicts would take gigabytes.
    """

    def __init__(
        self, encoded: dict[str, list[list[int]]], languages: list[str], draws: list[tuple[str, int]]
    ):
        index = {lang: i for i, lang in enumerate(languages)}
        self.encoded = [encoded[lang] for lang in languages]
        self.languages = torch.tensor([index[lang] for lang, _ in draws], dtype=torch.int16)
        self.lines = torch.tensor([i for _, i in draws], dtype=torch.int32)

    def __len__(self) -> int:
        return len(self.lines)

    def __getitem__(self, n: int) -> dict[str, Any]:
        language = int(self.languages[n])
        return {"input_ids": self.encoded[language][int(self.lines[n])], "language": language, "index": n}


def build_dataset(
    encoded: dict[str, list[list[int]]], languages: list[str], draws: list[tuple[str, int]]
) -> SampledDataset:
    """The training examples of the sampled (language, line index) draws."""
    return SampledDataset(encoded, languages, draws)


def train_distillation(
    model: Any,
    tokenizer: Any,
    dataset: list[dict[str, Any]],
    training: Any,
    work_dir: str | Path,
    *,
    mlm_probability: float,
    discriminator_lr_multiplier: float = 1.0,
    resume: bool = False,
    progress: bool = True,
    callbacks: list[Any] | None = None,
) -> dict[str, Any]:
    """Run the Trainer on `dataset`; checkpoints in work_dir/checkpoints, `resume` continues the last.

    Returns a summary: steps, mean loss, seconds, tokens/s and the logged history of every term.
    """
    checkpoints = checkpoint_dir(work_dir)
    last = last_checkpoint(checkpoints) if resume else None
    if resume and last is None:
        logger.warning("--resume: no checkpoint in %s, starting from scratch", checkpoints)
    # the paper's linear schedule with warm-up, stated rather than left to Trainer's default
    args = training_arguments(training, checkpoints, progress=progress, lr_scheduler_type="linear")
    trainer = _trainer_class()(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=DistillCollator(tokenizer, mlm_probability, seed=training.seed),
        callbacks=callbacks,
        discriminator_lr_multiplier=discriminator_lr_multiplier,
    )
    if not progress:  # without a progress bar Trainer prints every log line instead; stay quiet
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last)
    keys = (
        "step",
        "loss",
        "encoder_loss",
        "mlm",
        "kd",
        "adv",
        "adv_accuracy",
        "learning_rate",
        "tokens_per_s",
    )
    return {
        "steps": int(result.global_step),
        "train_loss": float(result.training_loss),
        "seconds": round(time.perf_counter() - started, 2),
        "tokens_per_second": round(trainer.throughput.per_second, 1),
        "resumed_from": Path(last).name if last else None,
        "history": [
            {k: v for k, v in entry.items() if k in keys}
            for entry in trainer.state.log_history
            if "loss" in entry
        ],
    }


def evaluate_distillation(
    model: Any,
    tokenizer: Any,
    held_out: dict[str, list[str]],
    *,
    mlm_probability: float = 0.15,
    batch_size: int = 32,
    max_length: int = 128,
    seed: int = 0,
) -> dict[str, Any]:
    """Held-out loss terms per language with a fixed random masking (comparable across runs).

    Reports the MLM loss (label-smoothed, as trained), the KD loss, and the discriminator's loss and
    language-ID accuracy; a lower accuracy means more language-universal states.
    """
    languages = model.languages
    collator = DistillCollator(tokenizer, mlm_probability, seed=seed)
    device = next(model.parameters()).device
    model.eval()
    per_language: dict[str, dict[str, float]] = {}
    for lang, lines in held_out.items():
        if not lines:
            continue
        sums: dict[str, float] = {}
        n = 0
        for start in range(0, len(lines), batch_size):
            ids = tokenizer(lines[start : start + batch_size], truncation=True, max_length=max_length)
            features = [
                {"input_ids": x, "language": languages.index(lang), "index": start + i}
                for i, x in enumerate(ids["input_ids"])
            ]
            batch = {k: v.to(device) for k, v in collator(features).items()}
            with torch.no_grad():
                out = model(**batch)
            for key in ("mlm", "kd", "adv", "adv_accuracy"):
                if key in out:
                    sums[key] = sums.get(key, 0.0) + float(out[key]) * len(features)
            n += len(features)
        per_language[lang] = {k: round(v / n, 4) for k, v in sums.items()}
    model.train(False)
    keys = sorted({k for v in per_language.values() for k in v})
    mean = {k: round(sum(v[k] for v in per_language.values()) / len(per_language), 4) for k in keys}
    return {"mean_over_languages": mean, "per_language": per_language}
