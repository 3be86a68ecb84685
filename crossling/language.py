"""Language adaptation (UniBridge section 2.3, MAD-X): an invertible + bottleneck language adapter
trained with masked language modelling plus a KL term that keeps the adapted representations close
to the base model's.

The KL term, made precise (DESIGN.md point 3): for every non-pad token, with hidden states h from the
final layer, KL( softmax(h_ref / tau) || softmax(h_adapted / tau) ) over the hidden dimension, averaged
over tokens. h_adapted comes from the training forward pass (language adapter active); h_ref from the
same input through the same model with the adapters switched off, under `no_grad`. Both passes use the
pack's own (new) embeddings, so the reference never sees ids from another vocabulary — the reference
implementation fed new-vocabulary ids to the old-vocabulary model and negated a misused `kl_div`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from crossling.config import LanguageAdapterConfig
from crossling.errors import ArtifactError, CrosslingError
from crossling.training_utils import (
    LossPartsLoggingMixin,
    last_checkpoint,
    on_model_device,
    training_arguments,
)

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------- loss
def hidden_state_kl(
    reference: torch.Tensor, adapted: torch.Tensor, attention_mask: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Mean over non-pad tokens of KL(softmax(reference/T) || softmax(adapted/T)) over the hidden dim.

    `reference` and `adapted` are [batch, length, hidden]; `attention_mask` is [batch, length] with 1
    for real tokens. Returns a scalar (0 when there is no real token).
    """
    log_p_ref = F.log_softmax(reference.float() / temperature, dim=-1)
    log_p_ada = F.log_softmax(adapted.float() / temperature, dim=-1)
    per_token = (log_p_ref.exp() * (log_p_ref - log_p_ada)).sum(-1)
    mask = attention_mask.to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum().clamp_min(1.0)


# ---------------------------------------------------------------------- model assembly
@dataclass
class AdaptableModel:
    """A masked-LM model with adapter support, plus what we learnt while assembling it."""

    model: Any  # a transformers *ForMaskedLM with `adapters` initialised
    tokenizer: Any
    adapter_name: str
    fresh_mlm_head: bool  # True when the base had no MLM head and one was created
    base_identity: Any  # crossling.artifacts.BaseModelIdentity of the base, before any surgery


def _load_mlm_model(base: str | Path) -> tuple[Any, bool]:
    """Load `base` as a masked LM; report whether the MLM head had to be created (e.g. e5-small)."""
    from transformers import AutoModelForMaskedLM
    from transformers.utils import logging as hf_logging

    # transformers warns that a missing MLM head is "newly initialized": we detect that ourselves
    # (fresh_mlm_head, recorded in the pack) and train it, so the warning would only alarm users.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(str(base), output_loading_info=True)
    except (OSError, ValueError) as err:
        raise CrosslingError(f"cannot load base model {base!r}: {err}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    missing = info.get("missing_keys", [])
    head_missing = any(
        ("lm_head" in k or k.startswith("cls.")) and not k.endswith("decoder.weight") for k in missing
    )
    return model, head_missing


def build_adaptable_model(
    base: str | Path,
    language: str,
    config: LanguageAdapterConfig | None = None,
    *,
    tokenizer: Any | None = None,
    embeddings: torch.Tensor | None = None,
    adapter_dir: str | Path | None = None,
    mlm_head_state: dict[str, torch.Tensor] | None = None,
) -> AdaptableModel:
    """Assemble base model + (new embeddings) + language adapter named `language`.

    With `embeddings` and `tokenizer` the vocabulary is replaced (rows = tokenizer size); the MLM decoder
    stays tied to the input embeddings, and its bias is resized with them. `adapter_dir` loads a saved
    adapter instead of adding a fresh one.
    """
    import adapters
    from adapters import SeqBnConfig, SeqBnInvConfig
    from transformers import AutoTokenizer

    from crossling.artifacts import BaseModelIdentity

    config = config or LanguageAdapterConfig()
    if Path(base).is_dir():
        base = Path(base).absolute()  # recorded in the pack, so it must not depend on the cwd
    model, fresh_head = _load_mlm_model(base)
    identity = BaseModelIdentity.of(model)
    if tokenizer is None:
        tokenizer = AutoTokenizer.from_pretrained(str(base))
    if embeddings is not None:
        if embeddings.shape[1] != model.config.hidden_size:
            raise CrosslingError(
                f"embeddings have width {embeddings.shape[1]} but the base model's hidden size is "
                f"{model.config.hidden_size}"
            )
        replace_vocabulary(model, tokenizer, embeddings)
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        raise CrosslingError(
            f"tokenizer has {len(tokenizer)} tokens but the model only "
            f"{model.get_input_embeddings().num_embeddings} embeddings: pass the embeddings of this tokenizer"
        )
    model.tie_weights()
    if mlm_head_state:
        mlm_head(model).load_state_dict(mlm_head_state, strict=False)
        fresh_head = False
    elif fresh_head:
        logger.info("%s has no MLM head: a new one is trained, its decoder tied to the embeddings", base)

    adapters.init(model)
    if adapter_dir is not None:
        with _no_active_adapter_expected():  # activating runs a forward context before it is active
            name = model.load_adapter(
                str(adapter_dir), load_as=language, set_active=True, use_safetensors=True, with_head=False
            )
        if name != language:  # pragma: no cover - adapters returns load_as
            raise ArtifactError(f"adapter in {adapter_dir} loaded as {name!r}, expected {language!r}")
    else:
        adapter_cls = SeqBnInvConfig if config.invertible else SeqBnConfig
        adapter_config = adapter_cls(
            reduction_factor=config.reduction_factor, leave_out=list(config.leave_out)
        )
        model.add_adapter(language, config=adapter_config)
    with _no_active_adapter_expected():  # adapters' set_active_adapters runs a forward context first
        model.set_active_adapters(language)
    _apply_inverse_beforemlm_head(model)
    return AdaptableModel(
        model=model,
        tokenizer=tokenizer,
        adapter_name=language,
        fresh_mlm_head=fresh_head,
        base_identity=identity,
    )


def replace_vocabulary(model: Any, tokenizer: Any, embeddings: torch.Tensor) -> None:
    """Swap the model's vocabulary for `tokenizer`'s with input embeddings `embeddings` (in place).

    Besides resizing and copying: the special-token ids in the config and the embedding's padding_idx
    follow the new tokenizer (a BERT base has pad 0, where crossling's tokenizers put <s>: left
    alone, the <s> row would never get a gradient); an MLM decoder is tied to the new embeddings
    (an untied one keeps rows of the old vocabulary), and the MLM output bias, indexed by old ids
    that now mean other tokens, is reset to zero (a pack's trained bias is loaded afterwards).
    """
    model.resize_token_embeddings(embeddings.shape[0])
    input_embeddings = model.get_input_embeddings()
    with torch.no_grad():
        input_embeddings.weight.copy_(embeddings)
    input_embeddings.padding_idx = tokenizer.pad_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.bos_token_id = tokenizer.bos_token_id or tokenizer.cls_token_id
    model.config.eos_token_id = tokenizer.eos_token_id or tokenizer.sep_token_id
    if model.get_output_embeddings() is not None:
        model.config.tie_word_embeddings = True
        with torch.no_grad():
            for name, param in mlm_head(model).named_parameters():
                if name.endswith("bias") and param.dim() == 1 and param.shape[0] == embeddings.shape[0]:
                    param.zero_()


def _apply_inverse_beforemlm_head(model: Any) -> None:
    """MAD-X: the invertible adapter's inverse runs on the last hidden states before the MLM head.

    `adapters` does this for its own flexible LM heads, but not for the static Hugging Face
    `*ForMaskedLM` heads we train with; without it the invertible adapter is only half of itself.
    With adapters switched off the inverse is the identity, so the hook is harmless then.
    """
    base = model.base_model
    if getattr(model, "_crossling_inverse_hook", None) is not None or not hasattr(
        base, "invertible_adapters_forward"
    ):
        return

    def inverse(_module: torch.nn.Module, args: tuple) -> tuple:
        return (base.invertible_adapters_forward(args[0], rev=True), *args[1:])

    model._crossling_inverse_hook = mlm_head(model).register_forward_pre_hook(inverse)


def mlm_head(model: Any) -> torch.nn.Module:
    """The prediction head of a Hugging Face *ForMaskedLM model (hidden states -> vocabulary logits)."""
    for name in ("lm_head", "cls", "predictions"):
        if hasattr(model, name):
            return getattr(model, name)
    raise CrosslingError(f"{type(model).__name__} has no MLM head that crossling knows how to use")


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy (optionally label-smoothed) of MLM logits at the masked positions.

    `logits` is [n_masked, vocab] (the head applied only where a token was masked, so a 250k vocabulary
    never materialises a [batch, length, vocab] tensor); `labels` is [n_masked]. With no masked token
    in the batch the loss is a differentiable zero (cross-entropy over nothing is NaN).
    """
    if labels.numel() == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)


def mlm_head_state(model: Any) -> dict[str, torch.Tensor]:
    """The MLM head's own parameters (transform + bias), without the decoder tied to the embeddings."""
    return {
        k: v.detach().clone()
        for k, v in mlm_head(model).state_dict().items()
        if not k.endswith("decoder.weight")
    }


def freeze_for_language_training(adaptable: AdaptableModel, config: LanguageAdapterConfig) -> list[str]:
    """Freeze the base; leave the adapter, the embeddings (if configured) and the MLM head's bias (or
    the whole head when it is new) trainable. Returns the names of trainable parameters."""
    model = adaptable.model
    model.train_adapter(adaptable.adapter_name, train_embeddings=config.train_embeddings)
    vocab_size = model.get_input_embeddings().num_embeddings
    for name, param in mlm_head(model).named_parameters():
        if name.endswith("decoder.weight"):
            continue  # tied to the input embeddings
        vocab_sized = param.dim() == 1 and param.shape[0] == vocab_size
        # A fresh head is trained whole; an existing one only gets its output bias trained, and only
        # when the embeddings (the vocabulary) are trained too.
        param.requires_grad = adaptable.fresh_mlm_head or (vocab_sized and config.train_embeddings)
    return [n for n, p in model.named_parameters() if p.requires_grad]


class _NoActiveAdapterWarning(logging.Filter):
    """Drop adapters' "none are activated" warning while `adapters_disabled` is in force."""

    depth = 0

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.depth and "none are activated" in record.getMessage())


_NO_ACTIVE_FILTER = _NoActiveAdapterWarning()
logging.getLogger("adapters.model_mixin").addFilter(_NO_ACTIVE_FILTER)


@contextlib.contextmanager
def _no_active_adapter_expected():
    _NO_ACTIVE_FILTER.depth += 1
    try:
        yield
    finally:
        _NO_ACTIVE_FILTER.depth -= 1


@contextlib.contextmanager
def adapters_disabled(model: Any):
    """Run the model as the base encoder (no adapter, invertible adapter included), then restore."""
    active = model.active_adapters
    # adapters warns on every forward without an adapter: here that is the point
    with _no_active_adapter_expected():
        model.set_active_adapters(None)
        try:
            yield
        finally:
            model.set_active_adapters(active)


@contextlib.contextmanager
def _head_at(model: Any, positions: torch.Tensor) -> Iterator[None]:
    """Within the block, the MLM head of `model` (unwrapped) sees only the hidden states at `positions`.

    Its logits are then [n_positions, vocab] instead of [batch, length, vocab]: with a 250k vocabulary
    (XLM-R, e5) the full tensor costs about 4x the encoder's compute per step and 1.5 GB at batch 16 x
    96 tokens, for the ~85% of positions whose loss is ignored. A forward pre-hook rather than calling
    the head ourselves, so the pass still goes through `model` (and a DDP wrapper's gradient sync), and
    MAD-X's inverse hook (also per token) still runs first.
    """
    handle = mlm_head(model).register_forward_pre_hook(lambda _m, args: (args[0][positions], *args[1:]))
    try:
        yield
    finally:
        handle.remove()


def masked_lm_outputs(
    model: Any, batch: dict[str, torch.Tensor], *, base: Any | None = None, output_hidden_states: bool = False
) -> tuple[torch.Tensor, Any]:
    """(MLM cross-entropy, model outputs) with the head applied at the masked positions only.

    The loss equals the Hugging Face model's with `labels` (mean over positions whose label is not
    -100); `outputs.logits` holds the masked positions' logits, [n_masked, vocab], not [batch, length,
    vocab]. When `model` is a wrapper (DDP), pass the unwrapped model as `base`: the hook goes on its
    head. Not for `nn.DataParallel`, whose replicas each see a slice of the batch.
    """
    labels = batch["labels"]
    masked = labels != -100
    with _head_at(base if base is not None else model, masked):
        outputs = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            output_hidden_states=output_hidden_states,
        )
    return masked_lm_loss(outputs.logits, labels[masked]), outputs


def mlm_kl_loss(
    model: Any,
    batch: dict[str, torch.Tensor],
    kl_weight: float,
    temperature: float,
    *,
    base: Any | None = None,
) -> tuple[torch.Tensor, Any, dict[str, float]]:
    """MLM loss + kl_weight * hidden-state KL for one batch: (loss, model outputs, {"mlm", "kl"}).

    `model` may be a DDP wrapper (the student pass must go through it for gradient sync); `base` is the
    unwrapped model, used for the reference pass with adapters switched off.
    """
    base = base if base is not None else model
    loss, outputs = masked_lm_outputs(model, batch, base=base, output_hidden_states=kl_weight > 0)
    parts = {"mlm": float(loss.detach())}
    if kl_weight > 0:
        # The reference is the base encoder's representation: deterministic, so without dropout (two
        # independent dropout masks would make the KL mostly noise) — and eval mode is ~3x faster.
        was_training = base.training
        base.eval()
        try:
            with torch.no_grad(), adapters_disabled(base):
                reference = base.base_model(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                ).last_hidden_state
        finally:
            base.train(was_training)
        kl = hidden_state_kl(reference, outputs.hidden_states[-1], batch["attention_mask"], temperature)
        parts["kl"] = float(kl.detach())
        loss = loss + kl_weight * kl
    return loss, outputs, parts


def evaluate_mlm(
    model: Any,
    tokenizer: Any,
    lines: list[str],
    *,
    mlm_probability: float = 0.15,
    batch_size: int = 16,
    max_length: int = 128,
    seed: int = 0,
) -> dict[str, float]:
    """Held-out masked-LM loss and perplexity with a fixed random masking (comparable across models)."""
    from transformers import DataCollatorForLanguageModeling

    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability)
    model.eval()
    total, count = 0.0, 0
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        for start in range(0, len(lines), batch_size):
            enc = tokenizer(lines[start : start + batch_size], truncation=True, max_length=max_length)
            batch = on_model_device(collator([{"input_ids": ids} for ids in enc["input_ids"]]), model)
            n = int((batch["labels"] != -100).sum())
            if n == 0:
                continue
            with torch.no_grad():
                loss, _ = masked_lm_outputs(model, batch)
            total += float(loss) * n
            count += n
    finally:
        torch.random.set_rng_state(generator_state)
    loss = total / max(count, 1)
    return {"mlm_loss": loss, "perplexity": math.exp(min(loss, 50.0)), "masked_tokens": count}


def measure_kl(
    model: Any,
    tokenizer: Any,
    lines: list[str],
    *,
    temperature: float = 1.0,
    batch_size: int = 16,
    max_length: int = 128,
) -> float:
    """Hidden-state KL(reference || adapted) on unmasked `lines`, averaged over their tokens (as the
    training loss is over a batch's)."""
    model.eval()
    total, tokens = 0.0, 0
    for start in range(0, len(lines), batch_size):
        enc = tokenizer(
            lines[start : start + batch_size],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )
        enc = on_model_device(enc, model)
        with torch.no_grad():
            adapted = model.base_model(**enc).last_hidden_state
            with adapters_disabled(model):
                reference = model.base_model(**enc).last_hidden_state
        n = int(enc["attention_mask"].sum())
        total += float(hidden_state_kl(reference, adapted, enc["attention_mask"], temperature)) * n
        tokens += n
    return total / max(tokens, 1)


# ---------------------------------------------------------------------- training
def train_language_adapter(
    adaptable: AdaptableModel,
    lines: list[str],
    config: LanguageAdapterConfig,
    training: Any,
    work_dir: str | Path,
    *,
    resume: bool = False,
    eval_lines: list[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the language adapter (and embeddings) on `lines` with MLM + beta * KL.

    Checkpoints go to `work_dir/checkpoints` every `training.save_steps` steps; with `resume=True` the
    last one is picked up (model, optimiser, scheduler, RNG, data order and masks: the run continues as
    if never stopped). Runs under
    `transformers.Trainer`, so `torchrun --nproc_per_node N` gives data-parallel training. Returns a
    summary: steps, losses, tokens/s, held-out perplexity and KL when `eval_lines` is given.
    """
    from transformers import DataCollatorForLanguageModeling

    if not lines:
        raise CrosslingError("the training corpus is empty after cleaning")
    work_dir = Path(work_dir)
    checkpoints = work_dir / "checkpoints"
    last = last_checkpoint(checkpoints) if resume else None
    if resume and last is None:
        logger.warning("--resume: no checkpoint in %s, starting from scratch", checkpoints)

    trainable = freeze_for_language_training(adaptable, config)
    tokenizer, model = adaptable.tokenizer, adaptable.model
    encoded = tokenizer(lines, truncation=True, max_length=training.max_length)["input_ids"]
    dataset = [{"input_ids": ids} for ids in encoded if len(ids) > 2]
    if not dataset:
        raise CrosslingError("no training sentence has any token besides the special ones")
    collator = _content_keyed_collator(DataCollatorForLanguageModeling)(
        tokenizer, mlm_probability=config.mlm_probability
    )
    collator.seed = training.seed  # a resumed run draws the same masks (see the collator)

    args = training_arguments(training, checkpoints, progress=progress)
    trainer = _trainer_class()(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=collator,
        kl_weight=config.kl_weight,
        temperature=config.kl_temperature,
    )
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - started
    summary: dict[str, Any] = {
        "steps": int(result.global_step),
        "train_loss": float(result.training_loss),
        "seconds": round(seconds, 2),
        "tokens_per_second": round(trainer.throughput.per_second, 1),
        "resumed_from": Path(last).name if last else None,
        "trainable_parameters": int(
            sum(p.numel() for n, p in model.named_parameters() if n in set(trainable))
        ),
        "history": [
            {k: v for k, v in entry.items() if k in ("step", "loss", "mlm", "kl", "tokens_per_s")}
            for entry in trainer.state.log_history
            if "loss" in entry
        ],
    }
    if eval_lines:
        summary["eval"] = evaluate_mlm(model, tokenizer, eval_lines, max_length=training.max_length)
        summary["eval"]["kl"] = measure_kl(
            model, tokenizer, eval_lines, temperature=config.kl_temperature, max_length=training.max_length
        )
    model.train(False)
    return summary


def _content_keyed_collator(base: type) -> type:
    """`base` (DataCollatorForLanguageModeling) drawing each batch's masks from a generator seeded by
    `seed` and the batch's token ids, not from the global RNG.

    With the global RNG a resumed run masks differently from the run it continues (Trainer collates
    the first resumed batch, and prefetches the next, before it restores the RNG state), and so does
    every dropout draw after it. The step is no key either: the data loader collates one batch ahead.
    Batches are reshuffled every epoch, so a sentence is usually masked anew each time it is seen; a
    batch that recurs whole (batch size 1, or a corpus no larger than a batch) keeps its masks.
    """
    import hashlib

    class ContentKeyedCollator(base):
        seed: int | None = None

        def torch_mask_tokens(self, inputs: Any, special_tokens_mask: Any = None) -> Any:
            if self.seed is not None:
                digest = hashlib.sha256(repr((self.seed, tuple(inputs.shape))).encode())
                digest.update(inputs.numpy().tobytes())
                self.generator = torch.Generator().manual_seed(int.from_bytes(digest.digest()[:8], "little"))
            return super().torch_mask_tokens(inputs, special_tokens_mask)

    return ContentKeyedCollator


def _trainer_class():
    from transformers import Trainer

    class MlmKlTrainer(LossPartsLoggingMixin, Trainer):
        """`Trainer` whose loss is MLM + beta * KL, with both parts and tokens/s in the logs."""

        def __init__(self, *args: Any, kl_weight: float, temperature: float, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.kl_weight, self.temperature = kl_weight, temperature

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, outputs, parts = mlm_kl_loss(
                model, inputs, self.kl_weight, self.temperature, base=self.accelerator.unwrap_model(model)
            )
            self.record_loss_parts(parts)
            self.check_finite_loss(loss)
            self.count_tokens(inputs["attention_mask"])
            return (loss, outputs) if return_outputs else loss

    return MlmKlTrainer


# ---------------------------------------------------------------------- packs
def save_language_pack(
    adaptable: AdaptableModel,
    out: str | Path,
    *,
    language: str,
    new_vocabulary: bool,
    reports: dict[str, Any] | None = None,
) -> Any:
    """Write `adaptable` as a LanguagePack directory (atomically); returns the LanguagePack."""
    from crossling.artifacts import LanguagePack

    model = adaptable.model
    pack = LanguagePack(language=language, base=adaptable.base_identity, reports=dict(reports or {}))
    pack.reports.setdefault("mlm_head", "fresh (base had none)" if adaptable.fresh_mlm_head else "base")
    pack.save_pretrained(
        out,
        tokenizer=adaptable.tokenizer if new_vocabulary else None,
        embeddings=model.get_input_embeddings().weight if new_vocabulary else None,
        mlm_head=mlm_head_state(model),
        # safetensors, not adapters' default pickles; the MLM head is saved by the pack itself
        write_adapter=lambda d: model.save_adapter(
            str(d), adaptable.adapter_name, use_safetensors=True, with_head=False
        ),
    )
    return pack


def load_pack_model(pack: Any, base: str | Path | None = None) -> AdaptableModel:
    """Base model + the pack's vocabulary, embeddings, MLM head and language adapter (active)."""
    from safetensors.torch import load_file

    source = base if base is not None else pack.base.name_or_path
    if not source:
        raise ArtifactError(f"LanguagePack {pack.path} does not record its base model: pass base=")
    if pack.adapter_dir is None:
        raise ArtifactError(f"LanguagePack {pack.path} has no adapter/ directory")
    head_file = pack.path / "mlm_head.safetensors"
    tokenizer = pack.load_tokenizer() if pack.has_own_vocabulary else None
    adaptable = build_adaptable_model(
        source,
        pack.language,
        tokenizer=tokenizer,
        embeddings=pack.load_embeddings(),
        adapter_dir=pack.adapter_dir,
        mlm_head_state=load_file(head_file) if head_file.is_file() else None,
    )
    pack.base.check_matches(adaptable.base_identity, f"LanguagePack {pack.path}")
    adaptable.model.eval()
    return adaptable


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the hidden states of real tokens: [batch, length, hidden] -> [batch, hidden]."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)


def encode(
    model: Any, tokenizer: Any, sentences: list[str], *, batch_size: int = 32, max_length: int = 128
) -> torch.Tensor:
    """Mean-pooled final hidden states of `sentences` through `model`'s encoder: [n, hidden]."""
    model.eval()
    chunks = []
    for start in range(0, len(sentences), batch_size):
        enc = tokenizer(
            sentences[start : start + batch_size],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )
        enc = on_model_device(enc, model)
        with torch.no_grad():
            hidden = model.base_model(**enc).last_hidden_state
        chunks.append(mean_pool(hidden, enc["attention_mask"]).cpu())
    if not chunks:
        return torch.empty(0, model.config.hidden_size)
    return torch.cat(chunks)
