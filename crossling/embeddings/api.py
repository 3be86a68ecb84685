"""`initialize`: new-vocabulary embeddings for a base model, plus the report and the on-disk format.

    from crossling.embeddings import initialize, save_initialization
    emb, report = initialize("multilingual-e5-small/", "tok/", "khm.txt", method="unibridge")
    save_initialization("emb/", emb, report)   # emb/embeddings.safetensors + emb/init_report.json

Loading models and tokenizers, training the fastText spaces (cached) and writing files happen here; the
methods themselves are the pure functions of :mod:`crossling.embeddings.methods`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import torch

from crossling.artifacts import atomic_directory, library_versions
from crossling.embeddings.errors import EmbeddingInitError
from crossling.embeddings.fasttext_vectors import (
    Corpus,
    FastTextConfig,
    TokenVectors,
    corpus_fingerprint,
    train_token_vectors,
)
from crossling.embeddings.methods import (
    METHODS,
    ORIGINS,
    RowSources,
    focus_init,
    overlap_init,
    random_init,
    unibridge_init,
)
from crossling.embeddings.similarity import DEFAULT_BLOCK
from crossling.embeddings.tokens import Vocab
from crossling.errors import ArtifactError, ConfigError

logger = logging.getLogger(__name__)

EMBEDDINGS_FILE = "embeddings.safetensors"
REPORT_FILE = "init_report.json"
Method = Literal["unibridge", "focus", "overlap", "random"]


@dataclasses.dataclass
class InitReport:
    """What `initialize` did: where every row came from, the fastText spaces, timings, warnings.

    ``rows`` counts target rows by origin (special, lexical, semantic, sparsemax, random); they sum to
    ``target_rows``. ``row_sources`` (per-row origin and copied base row) is kept in memory and in the
    safetensors file, not in the JSON.
    """

    method: str
    alignment: str | None
    seed: int
    base: str
    target_tokenizer: str
    source_rows: int
    target_rows: int
    hidden_size: int
    dtype: str
    rows: dict[str, int]
    marker_styles: dict[str, str]
    lexical_overlap_fraction: float
    special_tokens: dict[str, str] = dataclasses.field(default_factory=dict)
    fasttext: dict[str, Any] | None = None
    corpus: dict[str, Any] | None = None
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    warnings: list[str] = dataclasses.field(default_factory=list)
    versions: dict[str, str] = dataclasses.field(default_factory=library_versions)
    created: str = dataclasses.field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )
    row_sources: RowSources | None = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (without the per-row tensors)."""
        return {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "row_sources"
        } | {"summary": self.summary(one_line=True)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InitReport:
        names = {f.name for f in dataclasses.fields(cls)} - {"row_sources"}
        return cls(**{k: v for k, v in data.items() if k in names})

    def summary(self, *, one_line: bool = False) -> str:
        """Human-readable account; `one_line` for logs and pack metadata."""
        n = max(self.target_rows, 1)
        parts = [f"{name} {self.rows.get(name, 0)}" for name in ORIGINS[1:] + ORIGINS[:1]]
        head = f"{self.method}" + (f"/{self.alignment}" if self.alignment else "")
        if one_line:
            return f"{head}: {self.target_rows} rows = " + ", ".join(parts) + f" ({self.seconds:.1f} s)"
        lines = [
            f"{head} initialisation of {self.target_rows} x {self.hidden_size} embeddings "
            f"from {self.base} ({self.source_rows} rows), seed {self.seed}",
        ]
        for name in ("special", "lexical", "semantic", "sparsemax", "random"):
            k = self.rows.get(name, 0)
            lines.append(f"  {name:<10}{k:>9}  {100 * k / n:5.1f}%")
        if self.fasttext:
            ft = self.fasttext
            src = ft.get("source_vocab")
            lines.append(
                f"  fastText  dim {ft['dim']}, {ft['epochs']} epoch(s), {ft['model']}: "
                + (f"base-tokenized space {src} tokens, " if src is not None else "")
                + f"target-tokenized space {ft.get('target_vocab')} tokens"
                + (" (cache hit)" if ft.get("cache_hits") == ft.get("spaces") else "")
            )
        align = self.details.get("alignment")
        if align and align.get("method") == "procrustes" and "anchor_cosine_after" in align:
            lines.append(
                f"  alignment Procrustes on {align['anchors']} shared tokens: mean anchor cosine "
                f"{align['anchor_cosine_before']} -> {align['anchor_cosine_after']}"
            )
        mix = self.details.get("sparsemax")
        if mix and "mean_support" in mix:
            lines.append(f"  sparsemax mean support {mix['mean_support']} of {mix['anchors']} anchor tokens")
        lines.append(f"  time      {self.seconds:.1f} s")
        lines.extend(f"  warning: {w}" for w in self.warnings)
        return "\n".join(lines)


# ---------------------------------------------------------------------- loading
def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def load_tokenizer(name_or_path: str | os.PathLike[str], what: str = "tokenizer") -> Any:
    """AutoTokenizer.from_pretrained, with a one-line EmbeddingInitError instead of a library traceback."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(name_or_path))
    except Exception as err:  # transformers raises OSError, ValueError, KeyError, ... depending on the file
        raise EmbeddingInitError(
            f"cannot load the {what} from {str(name_or_path)!r} ({_first_line(err)}); "
            "pass a Hugging Face tokenizer directory or model name"
        ) from None


def load_base_embeddings(name_or_path: str | os.PathLike[str]) -> torch.Tensor:
    """The input embedding matrix of a base model.

    For a local directory with safetensors weights only that one tensor is read (a 250k x 768 matrix of
    a 1 GB model costs its own 770 MB, not the whole model); anything else goes through AutoModel.
    """
    path = Path(name_or_path)
    if path.is_dir():
        tensor = _embeddings_from_safetensors(path)
        if tensor is not None:
            return tensor
    from transformers import AutoModel

    try:
        model = AutoModel.from_pretrained(str(name_or_path))
    except Exception as err:
        raise EmbeddingInitError(
            f"cannot load the base model {str(name_or_path)!r} ({_first_line(err)})"
        ) from None
    weight = model.get_input_embeddings().weight.detach()
    del model
    return weight


def _embeddings_from_safetensors(path: Path) -> torch.Tensor | None:
    from safetensors import safe_open

    index = path / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        files = {name: path / file for name, file in weight_map.items()}
    elif (path / "model.safetensors").is_file():
        with safe_open(str(path / "model.safetensors"), "pt") as fh:
            files = {name: path / "model.safetensors" for name in fh.keys()}
    else:
        return None
    # BERT, RoBERTa, XLM-R, ELECTRA, ... all call it embeddings.word_embeddings; shortest name = the
    # encoder's own (not e.g. a generator's copy in a pretraining checkpoint).
    names = sorted((n for n in files if n.endswith("embeddings.word_embeddings.weight")), key=len)
    if not names:
        return None
    with safe_open(str(files[names[0]]), "pt") as fh:
        return fh.get_tensor(names[0])


def _resolve_base(base: Any) -> tuple[torch.Tensor, Any, str]:
    if isinstance(base, (tuple, list)):
        if len(base) != 2:
            raise EmbeddingInitError("base must be a model path/name or an (embeddings, tokenizer) pair")
        emb, tokenizer = base
        if isinstance(emb, torch.nn.Module):
            emb = emb.get_input_embeddings() if hasattr(emb, "get_input_embeddings") else emb
            emb = emb.weight
        if not isinstance(emb, torch.Tensor) or emb.ndim != 2:
            raise EmbeddingInitError("base embeddings must be a [vocab, hidden] tensor or a model")
        name = str(getattr(tokenizer, "name_or_path", "") or "<in-memory base>")
        return emb.detach(), tokenizer, name
    if not isinstance(base, (str, os.PathLike)):
        raise EmbeddingInitError(
            f"base must be a model path/name or (embeddings, tokenizer), got {type(base).__name__}"
        )
    tokenizer = load_tokenizer(base, "tokenizer of the base model")
    emb = load_base_embeddings(base)
    return emb, tokenizer, str(base)


def default_cache_dir() -> Path:
    """``$CROSSLING_CACHE/fasttext``, else ``$XDG_CACHE_HOME/crossling/fasttext`` (``~/.cache``)."""
    if os.environ.get("CROSSLING_CACHE"):
        return Path(os.environ["CROSSLING_CACHE"]) / "fasttext"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "crossling" / "fasttext"


class _Progress:
    """A tqdm bar fed by the methods' row callbacks (or nothing when progress is off)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar: Any = None

    def start(self, desc: str, total: int) -> None:
        self.close()
        if self.enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="rows", leave=False, dynamic_ncols=True)

    def __call__(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# ---------------------------------------------------------------------- initialize
def initialize(
    base: Any,
    target_tokenizer: Any,
    corpus: Corpus | None = None,
    method: Method = "unibridge",
    alignment: Literal["procrustes", "none"] = "procrustes",
    seed: int = 0,
    fasttext: FastTextConfig | Mapping[str, Any] | str | None = None,
    cache_dir: str | os.PathLike[str] | Literal[False] | None = None,
    *,
    ignore_case: bool = True,
    block_size: int = DEFAULT_BLOCK,
    progress: bool = False,
) -> tuple[torch.Tensor, InitReport]:
    """Initialise the embedding matrix of `target_tokenizer`'s vocabulary for the base model `base`.

    Args:
        base: a model directory or hub name, or an already loaded ``(embeddings, tokenizer)`` pair
            (embeddings as a ``[vocab, hidden]`` tensor or a model whose input embeddings are used).
        target_tokenizer: the new tokenizer (directory or loaded Hugging Face tokenizer).
        corpus: target-language text, a file with one sentence per line or a list of strings; required
            by ``unibridge`` and ``focus`` (fastText is trained on it), ignored by the baselines.
        method: ``unibridge`` (default), ``focus``, ``overlap`` or ``random`` (see
            :mod:`crossling.embeddings.methods`).
        alignment: UniBridge only: ``procrustes`` (default, our deviation) or ``none`` (the paper).
        seed: seeds fastText, the random fallback rows and the random baseline: the same inputs and
            seed give the identical tensor (fastText with ``threads=1``, the default).
        fasttext: :class:`FastTextConfig`, a preset name or a dict of its fields.
        cache_dir: where fastText vectors are cached (None: :func:`default_cache_dir`; False: no cache).
        ignore_case: let tokens that differ only in case count as lexical overlap (reference behaviour).
        block_size: tile size of the chunked similarity search (memory ~ 4 * block_size^2 bytes).
        progress: show progress bars (tokenization, fastText, similarity).

    Returns:
        ``(embeddings, report)``: a ``[len(target_tokenizer), hidden]`` tensor in the base's dtype and an
        :class:`InitReport`.

    Raises:
        EmbeddingInitError: the base model, its tokenizer, the target tokenizer or the corpus cannot be
            used (empty or smaller than ``fasttext.min_sentences`` lines for the fastText methods).
        ConfigError: unknown method, alignment or fastText option.
    """
    start = time.perf_counter()
    timings: dict[str, float] = {}
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if alignment not in ("procrustes", "none"):
        raise ConfigError(f"unknown alignment {alignment!r}; choose 'procrustes' or 'none'")
    ft_config = fasttext if isinstance(fasttext, FastTextConfig) else FastTextConfig.load(fasttext)

    t0 = time.perf_counter()
    source_emb, source_tok, base_name = _resolve_base(base)
    if isinstance(target_tokenizer, (str, os.PathLike)):
        target_name = str(target_tokenizer)
        target_tok = load_tokenizer(target_tokenizer, "target tokenizer")
    else:
        target_tok = target_tokenizer
        target_name = str(getattr(target_tok, "name_or_path", "") or "<in-memory tokenizer>")
    if not hasattr(target_tok, "get_vocab"):
        raise EmbeddingInitError(
            f"the target tokenizer must be a Hugging Face tokenizer, got {type(target_tok).__name__}"
        )
    source_vocab = Vocab.from_tokenizer(source_tok, size=source_emb.shape[0])
    target_vocab = Vocab.from_tokenizer(target_tok)
    if len(target_vocab) == 0:
        raise EmbeddingInitError(f"the target tokenizer {target_name} has an empty vocabulary")
    timings["load"] = time.perf_counter() - t0

    warnings: list[str] = []
    if len(source_tok) > source_emb.shape[0]:
        warnings.append(
            f"the base tokenizer has {len(source_tok)} tokens but the base embeddings only "
            f"{source_emb.shape[0]} rows; ids beyond them were ignored"
        )

    needs_corpus = method in ("unibridge", "focus")
    corpus_info = None
    ft_info: dict[str, Any] | None = None
    vectors: dict[str, TokenVectors] = {}
    resolved_cache: Path | None = None
    if needs_corpus:
        if corpus is None:
            raise EmbeddingInitError(
                f"method {method!r} trains fastText on target-language text: pass a corpus "
                "(or use method 'overlap' or 'random', which need none)"
            )
        t0 = time.perf_counter()
        if not isinstance(corpus, (str, os.PathLike, list, tuple)):
            corpus = list(corpus)  # a generator would be used up by the fingerprint, then train nothing
        n_lines, corpus_hash = corpus_fingerprint(corpus)
        corpus_info = {"sentences": n_lines, "sha256": corpus_hash}
        if isinstance(corpus, (str, os.PathLike)):
            corpus_info["path"] = str(corpus)
        if n_lines == 0:
            raise EmbeddingInitError(f"the corpus {_describe(corpus)} is empty (no non-empty lines)")
        if n_lines < ft_config.min_sentences:
            raise EmbeddingInitError(
                f"the corpus {_describe(corpus)} has only {n_lines} non-empty line(s); method {method!r} "
                f"needs at least {ft_config.min_sentences} to train fastText vectors that mean anything "
                "(use a larger corpus, lower FastTextConfig.min_sentences, or method 'overlap')"
            )
        timings["corpus"] = time.perf_counter() - t0
        resolved_cache = None if cache_dir is False else Path(cache_dir) if cache_dir else default_cache_dir()
        spaces = [("target", target_tok, len(target_vocab))]
        if method == "unibridge":
            spaces.insert(0, ("source", source_tok, source_emb.shape[0]))
        for which, tok, rows in spaces:
            t0 = time.perf_counter()
            vectors[which] = train_token_vectors(
                corpus,
                tok,
                ft_config,
                seed=seed,
                cache_dir=resolved_cache,
                corpus_hash=corpus_hash,
                num_rows=rows,
                progress=progress,
                desc="base" if which == "source" else "target",
            )
            timings[f"fasttext_{which}"] = time.perf_counter() - t0
        ft_info = ft_config.to_dict() | {
            "spaces": len(vectors),
            "cache_hits": sum(v.cache_hit for v in vectors.values()),
            "cache_dir": str(resolved_cache) if resolved_cache else None,
            "target_vocab": len(vectors["target"]),
            "target_corpus_tokens": vectors["target"].corpus_tokens,
        }
        if "source" in vectors:
            ft_info |= {
                "source_vocab": len(vectors["source"]),
                "source_corpus_tokens": vectors["source"].corpus_tokens,
            }

    t0 = time.perf_counter()
    bar = _Progress(progress)
    try:
        if method == "random":
            emb, rows = random_init(len(target_vocab), source_emb.shape[1], seed=seed, dtype=source_emb.dtype)
        elif method == "overlap":
            emb, rows = overlap_init(
                source_emb, source_vocab, target_vocab, seed=seed, ignore_case=ignore_case
            )
        elif method == "focus":
            bar.start("FOCUS sparsemax", len(vectors["target"]))
            emb, rows = focus_init(
                source_emb,
                source_vocab,
                target_vocab,
                vectors["target"],
                seed=seed,
                ignore_case=ignore_case,
                progress=bar,
            )
        else:
            bar.start("UniBridge similarity", 2 * len(vectors["target"]))
            emb, rows = unibridge_init(
                source_emb,
                source_vocab,
                target_vocab,
                vectors["source"],
                vectors["target"],
                alignment=alignment,
                seed=seed,
                ignore_case=ignore_case,
                block=block_size,
                progress=bar,
            )
    finally:
        bar.close()
    timings["init"] = time.perf_counter() - t0
    warnings.extend(rows.warnings)

    counts = rows.counts()
    if needs_corpus and counts["random"]:
        warnings.append(
            f"{counts['random']} target tokens ({100 * counts['random'] / len(target_vocab):.1f}%) got "
            "random rows: no lexical match and no fastText vector (fewer than min_count occurrences)"
        )
    lexical_fraction = counts["lexical"] / max(1, len(target_vocab) - len(target_vocab.special_ids))
    if method != "random" and counts["lexical"] == 0:
        warnings.append("the target vocabulary shares no token with the base vocabulary (0 lexical rows)")
    report = InitReport(
        method=method,
        alignment=alignment if method == "unibridge" else None,
        seed=seed,
        base=base_name,
        target_tokenizer=target_name,
        source_rows=int(source_emb.shape[0]),
        target_rows=int(emb.shape[0]),
        hidden_size=int(emb.shape[1]),
        dtype=str(emb.dtype).replace("torch.", ""),
        rows=counts,
        marker_styles={"source": source_vocab.style, "target": target_vocab.style},
        lexical_overlap_fraction=round(lexical_fraction, 4),
        special_tokens=rows.details.pop("special_tokens", {}),
        fasttext=ft_info,
        corpus=corpus_info,
        details=rows.details,
        timings={k: round(v, 3) for k, v in timings.items()},
        seconds=round(time.perf_counter() - start, 3),
        warnings=warnings,
        row_sources=rows,
    )
    logger.info("embedding init: %s", report.summary(one_line=True))
    return emb, report


def _describe(corpus: Corpus) -> str:
    return str(corpus) if isinstance(corpus, (str, os.PathLike)) else "(list of strings)"


# ---------------------------------------------------------------------- files
def save_initialization(
    out_dir: str | os.PathLike[str], embeddings: torch.Tensor, report: InitReport
) -> Path:
    """Write ``out_dir/embeddings.safetensors`` (key ``embeddings``; plus ``origin`` and ``source_index``
    when the report has them) and ``out_dir/init_report.json``, atomically: everything is written to
    a temporary sibling directory that replaces `out_dir` at the end.

    An existing `out_dir` is replaced only if it is empty or an earlier output of this function, so a
    mistyped ``--out .`` cannot delete a project.
    """
    from safetensors.torch import save_file

    out = Path(out_dir)
    if out.exists():
        if not out.is_dir():
            raise ArtifactError(f"{out} exists and is not a directory")
        entries = {p.name for p in out.iterdir()}
        if entries and not entries <= {EMBEDDINGS_FILE, REPORT_FILE}:
            raise ArtifactError(
                f"refusing to replace {out}: it holds files other than {EMBEDDINGS_FILE} and {REPORT_FILE}"
            )
    tensors = {"embeddings": embeddings.detach().cpu().contiguous()}
    if report.row_sources is not None:
        tensors["origin"] = report.row_sources.origin.contiguous()
        tensors["source_index"] = report.row_sources.source_index.contiguous()
    with atomic_directory(out) as tmp:
        save_file(
            tensors, str(tmp / EMBEDDINGS_FILE), metadata={"format": "crossling.embeddings", "version": "1"}
        )
        with (tmp / REPORT_FILE).open("w", encoding="utf-8") as fh:
            json.dump(report.to_dict(), fh, indent=2, ensure_ascii=False)
            fh.write("\n")
    return out


def load_initialization(path: str | os.PathLike[str]) -> tuple[torch.Tensor, InitReport]:
    """Read what :func:`save_initialization` wrote (a directory, or its ``embeddings.safetensors``)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    directory = path.parent if path.is_file() else path
    emb_path = directory / EMBEDDINGS_FILE
    report_path = directory / REPORT_FILE
    if not emb_path.is_file():
        raise ArtifactError(f"{directory} has no {EMBEDDINGS_FILE}: not a `crossling init` output")
    try:
        tensors = load_file(str(emb_path))
    except (SafetensorError, OSError) as err:
        raise ArtifactError(f"{emb_path}: unreadable ({_first_line(err)})") from None
    if "embeddings" not in tensors:
        raise ArtifactError(f"{emb_path} has no tensor named 'embeddings'")
    if report_path.is_file():
        try:
            report = InitReport.from_dict(json.loads(report_path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, TypeError) as err:
            raise ArtifactError(f"{report_path}: unreadable report ({_first_line(err)})") from None
    else:
        raise ArtifactError(f"{directory} has no {REPORT_FILE}")
    if "origin" in tensors and "source_index" in tensors:
        report.row_sources = RowSources(tensors["origin"], tensors["source_index"])
    return tensors["embeddings"], report
