"""Teacher loading and student construction: a BERT student with the teacher's vocabulary whose
embeddings are the teacher's, projected to the student's width.

Embedding initialisation (our choice; the paper only says the student keeps the teacher's
vocabulary): a truncated SVD of the teacher's embedding matrix E [vocab, H_t]. With E ~ U S V^T and V_k
the top-k right singular vectors (k = student width), the student gets E V_k. Its Gram matrix
(E V_k)(E V_k)^T is the best rank-k approximation of E E^T (Eckart-Young), so the dot products between
token embeddings, which the tied MLM decoder turns into logits, and with them each token's nearest
neighbours, survive as well as any linear map to k dimensions can keep them. The SVD is not centred on
purpose: centring would change the dot products the decoder uses. Position and token-type embeddings
live in the same space and are projected with the same V_k; V_k^T also initialises the hidden-state
KD projection (student -> teacher width), so distillation starts from a consistent mapping. When the
student is wider than the teacher, an orthonormal V (seeded) embeds E without loss.

Tied or untied MLM decoder (`DistillConfig.tie_decoder`): BERT ties the decoder to the input
embeddings. Then the softmax over 250k tokens sends a small gradient to *every* row at every step, and
Adam, which normalises each parameter's step, turns those into full-size steps: after 300 CPU steps all
rows had moved by nearly the same vector (cosine 0.97 between the per-row changes and their mean, 35%
of a row's norm), flattening the projected geometry, including that of tokens of languages the corpus
never showed. With an untied decoder (initialised with the same projected rows) the input embeddings
get gradient only for tokens in the batch, so the teacher's geometry of every other token survives.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from crossling.distill.config import StudentSize
from crossling.errors import CrosslingError

logger = logging.getLogger(__name__)


@dataclass
class Teacher:
    """A frozen teacher: the loaded model, its tokenizer, and whether it has a usable MLM head."""

    model: Any  # *ForMaskedLM (its head is random when `has_mlm_head` is False)
    tokenizer: Any
    has_mlm_head: bool
    identity: Any  # crossling.artifacts.BaseModelIdentity
    source: str


def load_teacher(name_or_path: str | Path) -> Teacher:
    """Load the teacher as a masked LM in eval mode with gradients off; detect a missing MLM head."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from crossling.artifacts import BaseModelIdentity
    from crossling.language import _load_mlm_model

    source = str(Path(name_or_path).absolute()) if Path(name_or_path).is_dir() else str(name_or_path)
    # a teacher without an MLM head (e5) makes transformers warn about a "newly initialized" head that
    # we never use; say what it means for distillation instead
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model, head_missing = _load_mlm_model(source)
    finally:
        hf_logging.set_verbosity(verbosity)
    if head_missing:
        logger.info("teacher %s has no MLM head: distilling its hidden states through a projection", source)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise CrosslingError(f"cannot load the tokenizer of teacher {source!r}: {err}") from None
    model.eval()
    model.requires_grad_(False)
    return Teacher(
        model=model,
        tokenizer=tokenizer,
        has_mlm_head=not head_missing,
        identity=BaseModelIdentity.of(model),
        source=source,
    )


def project_embeddings(
    embeddings: torch.Tensor, width: int, *, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Project `embeddings` [vocab, H] to `width` columns: (E V, V [H, width], report).

    For width < H, V holds the top right singular vectors of E (uncentred truncated SVD, computed from
    the H x H Gram matrix in float64 so a 250k-row matrix costs one small eigendecomposition). For
    width >= H, V has orthonormal rows (a seeded random rotation), which keeps every dot product.
    The report gives the share of the squared Frobenius norm (the "energy") that the projection keeps.
    """
    rows, dim = embeddings.shape
    e = embeddings.detach().to(torch.float64)
    if width < dim:
        gram = e.T @ e
        eigenvalues, eigenvectors = torch.linalg.eigh(gram)  # ascending
        order = torch.argsort(eigenvalues, descending=True)[:width]
        basis = eigenvectors[:, order]
        # a fixed sign per direction (eigh's signs are arbitrary): largest-magnitude entry positive
        largest = basis.gather(0, basis.abs().argmax(0, keepdim=True))
        basis = basis * torch.where(largest < 0, -1.0, 1.0)
        kept = float(eigenvalues[order].sum() / eigenvalues.sum().clamp_min(1e-30))
        method = "truncated-svd"
    else:
        generator = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(width, dim, generator=generator, dtype=torch.float64))
        basis = q.T  # [dim, width], orthonormal rows
        kept = 1.0
        method = "orthonormal-embedding"
    projected = (e @ basis).to(embeddings.dtype)
    report = {
        "method": method,
        "rows": rows,
        "from_width": dim,
        "to_width": width,
        "energy_kept": round(kept, 4),
    }
    return projected, basis.to(embeddings.dtype), report


def _teacher_positions(teacher_model: Any) -> tuple[torch.Tensor, int]:
    """The teacher's usable absolute position embeddings and their count (RoBERTa offsets by pad+1)."""
    embeddings = teacher_model.base_model.embeddings
    weight = embeddings.position_embeddings.weight
    offset = 0
    if getattr(teacher_model.config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        offset = int(teacher_model.config.pad_token_id) + 1
    return weight[offset:], weight.shape[0] - offset


def student_config(teacher: Teacher, shape: StudentSize, max_positions: int, tie_decoder: bool = True) -> Any:
    """A BertConfig for the student: the teacher's vocabulary and special ids, the given shape."""
    from transformers import BertConfig

    tconf = teacher.model.config
    _, teacher_positions = _teacher_positions(teacher.model)
    tokenizer = teacher.tokenizer
    if len(tokenizer) > int(tconf.vocab_size):
        raise CrosslingError(
            f"the teacher's tokenizer has {len(tokenizer)} tokens but its model only {tconf.vocab_size} "
            "embeddings: the student keeps the teacher's vocabulary, so both must agree"
        )
    return BertConfig(
        vocab_size=int(tconf.vocab_size),
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        intermediate_size=shape.feed_forward,
        max_position_embeddings=min(max_positions, teacher_positions),
        type_vocab_size=int(getattr(tconf, "type_vocab_size", 1) or 1),
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
        bos_token_id=tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id,
        eos_token_id=tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id,
        tie_word_embeddings=tie_decoder,
        architectures=["BertForMaskedLM"],
    )


def build_student(
    teacher: Teacher,
    shape: StudentSize,
    *,
    max_positions: int = 512,
    embedding_init: str = "svd",
    tie_decoder: bool = True,
    seed: int = 0,
) -> tuple[Any, torch.Tensor | None, dict[str, Any]]:
    """A fresh `BertForMaskedLM` student: (model, projection basis V [H_t, H_s] or None, report).

    Transformer layers start from BERT's random initialisation (seeded); embeddings come from the
    teacher through `project_embeddings` unless `embedding_init == "random"`.
    """
    from transformers import BertForMaskedLM

    torch.manual_seed(seed)
    config = student_config(teacher, shape, max_positions, tie_decoder)
    student = BertForMaskedLM(config)
    report: dict[str, Any] = {"embedding_init": embedding_init}
    basis = None
    if embedding_init == "svd":
        source = teacher.model.base_model.embeddings
        words, basis, report["projection"] = project_embeddings(
            source.word_embeddings.weight, shape.hidden, seed=seed
        )
        if words.shape[0] != config.vocab_size:
            raise CrosslingError(
                f"teacher embeddings have {words.shape[0]} rows but its config says "
                f"vocab_size {config.vocab_size}"
            )
        positions, _ = _teacher_positions(teacher.model)
        target = student.bert.embeddings
        with torch.no_grad():
            target.word_embeddings.weight.copy_(words)
            n_pos = config.max_position_embeddings
            target.position_embeddings.weight.copy_(
                positions[:n_pos].to(torch.float64) @ basis.to(torch.float64)
            )
            if hasattr(source, "token_type_embeddings"):
                types = source.token_type_embeddings.weight[: config.type_vocab_size]
                target.token_type_embeddings.weight[: types.shape[0]].copy_(
                    types.to(torch.float64) @ basis.to(torch.float64)
                )
    elif embedding_init != "random":
        raise CrosslingError(f"embedding_init must be 'svd' or 'random', not {embedding_init!r}")
    student.tie_weights()  # ties only when config.tie_word_embeddings
    if not tie_decoder:
        with torch.no_grad():  # the decoder starts from the same rows, then goes its own way
            student.get_output_embeddings().weight.copy_(student.get_input_embeddings().weight)
    report["decoder"] = "tied to the input embeddings" if tie_decoder else "untied"
    report["parameters"] = count_parameters(student)
    return student, basis, report


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """Parameter counts: total (tied weights once; the MLM head included), the encoder alone (what
    AutoModel loads), its embeddings and its transformer layers."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    embeddings = sum(p.numel() for p in model.base_model.embeddings.parameters())
    layers = sum(p.numel() for p in model.base_model.encoder.parameters())
    encoder = sum(p.numel() for p in model.base_model.parameters())
    return {"total": total, "encoder": encoder, "embeddings": embeddings, "encoder_layers": layers}
