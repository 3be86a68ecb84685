"""Multi-source inference (UniBridge section 2.4): harmony weights x per-source task logits.

For a target language t and source languages S, K parallel sentences are encoded on each side with
that side's own LanguagePack (mean-pooled final hidden states, language adapter active), and

    d_{t,s} = 1 / mean_k ||h_t^k - h_s^k||_2          w = softmax(d / tau)          y = sum_s w_s logits_s

where logits_s comes from the task adapter trained on source s, all task adapters running in one
forward pass as ``Stack(target_language, Parallel(task_1, ..., task_n))`` over the target's pack::

    from crossling.multisource import MultiSourcePredictor, compute_harmony
    weights = compute_harmony("packs/gn", ["packs/en", "packs/es"], "dev_aligned_with_xnli_dev.tsv")
    weights.save_pretrained("harmony/gn.json")
    predictor = MultiSourcePredictor.from_pretrained(
        "packs/gn", ["task/nli-en", "task/nli-es"], weights="harmony/gn.json"
    )
    predictor.predict_pairs(["premise ..."], ["hypothesis ..."]).labels

tau = 1 is the paper's setting; with distances of several units (mean-pooled states of a real encoder)
the inverse distances differ by hundredths and the weights come out nearly uniform. The report of
every computation gives the normalised entropy of the weights and `informative_temperature`, the
largest tau at which the nearest source gets at least twice the weight of the farthest.

Strategies (one option, so the paper's "- multi-source" ablation is a flag): ``harmony`` (default),
``uniform``, ``best`` (the single source with the largest harmony weight), ``english`` (English
only) and ``given`` (explicit weights). Sources whose weight is 0 are not run at all.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

import torch

from crossling.config import HARMONY_STRATEGIES
from crossling.errors import ArtifactError, ConfigError, CrosslingError, DataFormatError

logger = logging.getLogger(__name__)

STRATEGIES = ("harmony", "uniform", "best", "english", "given")  # HarmonyConfig.strategy's choices
HARMONY_FILE = "harmony_weights.json"  # the file name used when save_pretrained is given a directory
INFORMATIVE_RATIO = 2.0  # "informative": the nearest source weighs at least this many times the farthest

PathLike = str | os.PathLike[str]
ParallelSpec = Mapping[str, Sequence[str]] | Mapping[str, PathLike] | PathLike


# ---------------------------------------------------------------------- the pure computation
def _softmax(values: list[float], temperature: float) -> list[float]:
    if any(math.isinf(v) for v in values):  # a source at distance 0 is the target itself
        n = sum(1 for v in values if math.isinf(v))
        return [1.0 / n if math.isinf(v) else 0.0 for v in values]
    scaled = torch.tensor(values, dtype=torch.float64) / temperature
    return torch.softmax(scaled, dim=0).tolist()


def weights_from_distances(
    distances: Mapping[str, float],
    *,
    temperature: float = 1.0,
    given: Mapping[str, float] | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Weights from mean L2 distances: softmax over d = 1/distance at `temperature`.

    `given` fixes the weight of some sources (e.g. sources without parallel sentences); the softmax
    shares what is left, 1 - sum(given), among the others. Returns (weights, report).
    """
    if not temperature > 0:
        raise ConfigError(f"temperature must be > 0, got {temperature!r}")
    given = {s: float(w) for s, w in (given or {}).items()}
    for source, weight in given.items():
        if not 0.0 <= weight <= 1.0:
            raise ConfigError(f"given weight of source {source!r} must be in [0, 1], got {weight}")
    for source, distance in distances.items():
        if not distance >= 0 or math.isnan(distance):
            raise ConfigError(f"distance of source {source!r} must be >= 0, got {distance!r}")
    computed = [s for s in distances if s not in given]
    fixed = sum(given.values())
    if fixed > 1.0 + 1e-9:
        raise ConfigError(f"given weights sum to {fixed:.4f}, more than 1: {given}")
    if not computed and not given:
        raise ConfigError("no sources: give parallel sentences or weights for at least one source")
    if not computed:
        # only explicit weights: they are the whole distribution
        if fixed <= 0:
            raise ConfigError(f"given weights sum to 0: {given}")
        given = {s: w / fixed for s, w in given.items()}
        fixed = 1.0
    inverse = {s: (1.0 / distances[s] if distances[s] > 0 else math.inf) for s in computed}
    shares = _softmax([inverse[s] for s in computed], temperature) if computed else []
    weights = {s: (1.0 - fixed) * share for s, share in zip(computed, shares, strict=True)}
    weights.update(given)
    weights = {s: weights[s] for s in [*distances, *[g for g in given if g not in distances]]}

    report: dict[str, Any] = {
        "temperature": temperature,
        "distances": {s: float(d) for s, d in distances.items()},
        "inverse_distances": {s: (None if math.isinf(v) else v) for s, v in inverse.items()},
        "given": given,
    }
    if computed:
        soft = [w for w in shares if w > 0]
        entropy = -sum(w * math.log(w) for w in soft)
        report["normalised_entropy"] = entropy / math.log(len(computed)) if len(computed) > 1 else 0.0
        report["nearest"] = max(computed, key=lambda s: inverse[s])
        finite = [v for v in inverse.values() if not math.isinf(v)]
        if len(finite) == len(computed) and len(computed) > 1:
            spread = max(finite) - min(finite)
            ratio = max(shares) / min(shares) if min(shares) > 0 else None  # None: underflow to 0
            report["max_over_min"] = ratio
            # ratio = exp(spread / tau) >= INFORMATIVE_RATIO  <=>  tau <= spread / ln(INFORMATIVE_RATIO)
            report["informative_temperature"] = spread / math.log(INFORMATIVE_RATIO) if spread > 0 else None
            report["nearly_uniform"] = ratio is not None and ratio < INFORMATIVE_RATIO * (1 - 1e-9)
    return weights, report


def harmony_weights(
    target: torch.Tensor | Mapping[str, torch.Tensor],
    sources: Mapping[str, torch.Tensor],
    *,
    temperature: float = 1.0,
    given: Mapping[str, float] | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """UniBridge harmony weights from sentence representations: (weights, report).

    `sources[s]` is [K, hidden]: K sentences of source s, mean-pooled through s's LanguagePack;
    `target` is [K, hidden] (the same K target sentences for every source) or ``{s: [K, hidden]}``
    (the target side of each source's own K pairs). d_s = 1 / mean_k ||h_t^k - h_s^k||_2 and
    w = softmax(d / temperature); a source at distance 0 takes all the weight. `given` fixes some
    sources' weights (see `weights_from_distances`). Nothing here touches a model.
    """
    distances: dict[str, float] = {}
    counts: dict[str, int] = {}
    for source, states in sources.items():
        target_states = target[source] if isinstance(target, Mapping) else target
        if target_states.ndim != 2 or states.shape != target_states.shape or states.shape[0] == 0:
            raise ConfigError(
                f"source {source!r}: expected two [K, hidden] tensors of the same shape with K >= 1, got "
                f"target {tuple(target_states.shape)} and source {tuple(states.shape)}"
            )
        difference = target_states.double() - states.double()
        distances[source] = float(difference.norm(dim=-1).mean())
        counts[source] = int(states.shape[0])
    weights, report = weights_from_distances(distances, temperature=temperature, given=given)
    report["num_sentences"] = counts
    return weights, report


# ---------------------------------------------------------------------- the artifact
def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclasses.dataclass
class HarmonyWeights:
    """Harmony weights of one or more targets over source languages, with how they were computed.

    `targets[t]` holds ``weights``, ``distances`` (mean L2), ``given`` weights, ``excluded`` sources
    (no parallel sentences, no weight), ``parallel`` (where each pair's sentences came from) and the
    ``report`` of `weights_from_distances`. Saved as one JSON file.
    """

    targets: dict[str, dict[str, Any]]
    temperature: float = 1.0
    num_parallel: int = 10
    packs: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)  # targets / sources
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    created: str = dataclasses.field(default_factory=_now)
    path: Path | None = None

    FORMAT = "crossling.HarmonyWeights"

    @property
    def languages(self) -> list[str]:
        """The target languages, in order."""
        return list(self.targets)

    @property
    def sources(self) -> list[str]:
        """Every source language that has a weight for some target, in first-seen order."""
        seen: dict[str, None] = {}
        for entry in self.targets.values():
            seen.update(dict.fromkeys(entry["weights"]))
        return list(seen)

    def for_target(self, target: str | None = None) -> dict[str, float]:
        """{source: weight} of `target` (may be omitted when there is only one target)."""
        if target is None:
            if len(self.targets) != 1:
                raise ConfigError(f"these weights hold several targets ({', '.join(self.targets)}): name one")
            target = next(iter(self.targets))
        if target not in self.targets:
            where = f" ({self.path})" if self.path else ""
            raise ConfigError(
                f"no harmony weights for target {target!r}{where}; it has: {', '.join(self.targets)}"
            )
        return dict(self.targets[target]["weights"])

    def with_temperature(self, temperature: float) -> HarmonyWeights:
        """The same distances re-weighted at another tau (no model needed)."""
        targets = {}
        for target, entry in self.targets.items():
            weights, report = weights_from_distances(
                entry["distances"], temperature=temperature, given=entry.get("given")
            )
            report["num_sentences"] = entry["report"].get("num_sentences", {})
            targets[target] = {**entry, "weights": weights, "report": report}
        return dataclasses.replace(
            self, targets=targets, temperature=float(temperature), path=None, created=_now()
        )

    # ------------------------------------------------------------------ views
    def table(self, *, digits: int = 3) -> str:
        """Markdown table: one row per target, one column per source, "weight (distance)"."""
        sources = self.sources
        lines = [
            "| target | " + " | ".join(sources) + " |",
            "|---|" + "---|" * len(sources),
        ]
        for target, entry in self.targets.items():
            cells = []
            for source in sources:
                if source not in entry["weights"]:
                    cells.append("excluded" if source in entry.get("excluded", []) else "-")
                    continue
                cell = f"{entry['weights'][source]:.{digits}f}"
                distance = entry["distances"].get(source)
                cell += f" ({distance:.2f})" if distance is not None else " (given)"
                cells.append(cell)
            lines.append(f"| {target} | " + " | ".join(cells) + " |")
        return (
            f"harmony weights at temperature {self.temperature:g} — weight (mean L2 distance)\n\n"
            + "\n".join(lines)
            + "\n"
        )

    def heatmap_svg(self, *, cell: int = 56) -> str:
        """A targets x sources heatmap of the weights as standalone SVG text."""
        sources, targets = self.sources, self.languages
        values = [w for e in self.targets.values() for w in e["weights"].values()]
        lo, hi = min(values, default=0.0), max(values, default=1.0)
        left, top = 70, 60
        width, height = left + cell * len(sources) + 20, top + cell * len(targets) + 20
        out = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
            f'<rect width="{width}" height="{height}" fill="white"/>',
            f'<text x="{width / 2:.0f}" y="18" text-anchor="middle" font-size="14">'
            f"harmony weights (tau {self.temperature:g})</text>",
        ]
        for j, source in enumerate(sources):
            x = left + cell * j + cell / 2
            out.append(f'<text x="{x:.0f}" y="{top - 8}" text-anchor="middle">{escape(source)}</text>')
        for i, target in enumerate(targets):
            y = top + cell * i
            out.append(
                f'<text x="{left - 8}" y="{y + cell / 2 + 4:.0f}" text-anchor="end">{escape(target)}</text>'
            )
            weights = self.targets[target]["weights"]
            for j, source in enumerate(sources):
                x = left + cell * j
                if source not in weights:
                    out.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="#eeeeee"/>')
                    continue
                level = (weights[source] - lo) / (hi - lo) if hi > lo else 0.5
                shade = round(255 - 190 * level)
                out.append(
                    f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" '
                    f'fill="rgb({shade},{shade},255)" stroke="white"/>'
                )
                colour = "white" if level > 0.6 else "black"
                out.append(
                    f'<text x="{x + cell / 2:.0f}" y="{y + cell / 2 + 4:.0f}" text-anchor="middle" '
                    f'fill="{colour}">{weights[source]:.2f}</text>'
                )
        out.append("</svg>")
        return "\n".join(out) + "\n"

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        from crossling.artifacts import FORMAT_VERSION

        return {
            "format": self.FORMAT,
            "format_version": FORMAT_VERSION,
            "temperature": self.temperature,
            "num_parallel": self.num_parallel,
            "targets": self.targets,
            "packs": self.packs,
            "settings": self.settings,
            "versions": self.versions,
            "created": self.created,
        }

    def save_pretrained(self, path: PathLike) -> Path:
        """Write the JSON atomically to `path` (a directory gets `harmony_weights.json` inside)."""
        from crossling.artifacts import library_versions, write_json_atomic

        path = Path(path)
        if path.is_dir():
            path = path / HARMONY_FILE
        if not self.versions:
            self.versions = library_versions()
        write_json_atomic(path, self.to_dict())
        self.path = path.absolute()
        return self.path

    @classmethod
    def from_pretrained(cls, path: PathLike) -> HarmonyWeights:
        import json

        from crossling.artifacts import FORMAT_VERSION

        path = Path(path)
        if path.is_dir():
            path = path / HARMONY_FILE
        if not path.is_file():
            raise ArtifactError(f"{path}: no such harmony weights file")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ArtifactError(f"{path}: unreadable harmony weights ({err})") from None
        if not isinstance(data, dict) or data.get("format") != cls.FORMAT:
            found = data.get("format", "no format field") if isinstance(data, dict) else type(data).__name__
            raise ArtifactError(f"{path} is not a crossling HarmonyWeights file ({found})")
        if data.get("format_version", 0) > FORMAT_VERSION:
            raise ArtifactError(f"{path} was written by a newer crossling; upgrade crossling")
        for target, entry in data["targets"].items():
            if not isinstance(entry, dict) or not isinstance(entry.get("weights"), dict):
                raise ArtifactError(f"{path}: target {target!r} has no weights")
        return cls(
            targets=data["targets"],
            temperature=float(data.get("temperature", 1.0)),
            num_parallel=int(data.get("num_parallel", 10)),
            packs=data.get("packs", {}),
            settings=data.get("settings", {}),
            versions=data.get("versions", {}),
            created=data.get("created", ""),
            path=path.absolute(),
        )


# ---------------------------------------------------------------------- parallel sentences
@dataclasses.dataclass
class ParallelPairs:
    """Up to K (target sentence, source sentence) pairs for one target-source pair, and their origin."""

    target: list[str]
    source: list[str]
    origin: dict[str, Any]


def _first_pairs(
    pairs: Iterable[tuple[Any, str, str]], k: int, *, dedupe: bool = False
) -> tuple[list[str], list[str], list[Any]]:
    targets, sources, where, seen = [], [], [], set()
    for position, t, s in pairs:
        t, s = t.strip(), s.strip()
        if not t or not s or (dedupe and t in seen):
            continue
        seen.add(t)
        targets.append(t)
        sources.append(s)
        where.append(position)
        if len(targets) >= k:
            break
    return targets, sources, where


def collect_parallel(
    parallel: ParallelSpec, target: str, sources: Sequence[str], k: int
) -> tuple[dict[str, ParallelPairs], list[str]]:
    """The first `k` parallel pairs of `target` with every source that has them: ({source: pairs}, missing).

    `parallel` is one of
      * ``{language: [sentences]}``: line-aligned lists (the target's included);
      * ``{language: path}``: line-aligned text files, one per language (the target's included);
      * a TSV path: AmericasNLI's ``dev_aligned_with_xnli_dev.tsv`` (target text from the rows of that
        language, source text from ``premise_XX`` / ``hypothesis_XX``), or any TSV whose header names
        languages (one column per language).
    Pairs with a blank side are skipped; from the alignment table each target sentence is used once.
    """
    if k < 1:
        raise ConfigError(f"the number of parallel sentences must be >= 1, got {k}")
    found: dict[str, ParallelPairs] = {}
    missing: list[str] = []
    if isinstance(parallel, Mapping):
        if target not in parallel:
            raise ConfigError(
                f"no parallel sentences for target {target!r}; given languages: {', '.join(parallel)}"
            )
        for source in sources:
            if source not in parallel:
                missing.append(source)
                continue
            found[source] = _pairs_from_mapping(parallel, target, source, k)
        return found, missing
    return _pairs_from_table(Path(parallel), target, sources, k)


def _pairs_from_mapping(parallel: Mapping[str, Any], target: str, source: str, k: int) -> ParallelPairs:
    t_side, s_side = parallel[target], parallel[source]
    if isinstance(t_side, (str, os.PathLike)) != isinstance(s_side, (str, os.PathLike)):
        raise ConfigError("give parallel sentences either as lists or as file paths for every language")
    if isinstance(t_side, (str, os.PathLike)):
        from crossling.data import read_parallel

        records = read_parallel(s_side, t_side, skip_empty=False, strip=True)
        numbered = ((line, r["target"], r["source"]) for line, r in enumerate(records, 1))
        t, s, lines = _first_pairs(numbered, k)
        origin = {"target_file": str(t_side), "source_file": str(s_side), "lines": lines}
    else:
        if len(t_side) != len(s_side):
            raise ConfigError(
                f"parallel sentences of {target!r} ({len(t_side)}) and {source!r} ({len(s_side)}) "
                "are not aligned: the lists must have the same length"
            )
        t, s, indices = _first_pairs(zip(range(len(t_side)), t_side, s_side, strict=True), k)
        origin = {"sentences": "given in memory", "indices": indices}
    if not t:
        raise ConfigError(f"no non-blank parallel pairs between {target!r} and {source!r}")
    return ParallelPairs(t, s, origin)


def _pairs_from_table(path: Path, target: str, sources: Sequence[str], k: int):
    from crossling.data import guess_format, read_americasnli_alignment, read_tsv

    fmt = guess_format(path)
    found: dict[str, ParallelPairs] = {}
    missing: list[str] = []
    if fmt == "anli-alignment":
        rows = [r for r in read_americasnli_alignment(path) if r["language"] == target]
        if not rows:
            languages = sorted({r["language"] for r in read_americasnli_alignment(path)})
            raise DataFormatError(
                path, None, f"no rows for target {target!r}; languages: {', '.join(languages)}"
            )
        for source in sources:
            if f"premise_{source}" not in rows[0]:
                missing.append(source)
                continue
            pairs = (
                (row["id"], row[side], row[f"{side}_{source}"])
                for row in rows
                for side in ("premise", "hypothesis")
            )
            t, s, ids = _first_pairs(pairs, k, dedupe=True)
            found[source] = ParallelPairs(t, s, {"file": str(path), "format": fmt, "ids": ids})
        return found, missing
    if fmt != "tsv":
        raise DataFormatError(
            path,
            None,
            f"parallel sentences: expected AmericasNLI's alignment table or a TSV whose header names "
            f"languages, but this looks like a {fmt!r} file (give LANG=FILE line-aligned text files instead)",
        )
    rows = list(read_tsv(path, header=True))
    if target not in rows[0]:
        raise DataFormatError(path, 1, f"no column for target {target!r}; columns: {', '.join(rows[0])}")
    for source in sources:
        if source not in rows[0]:
            missing.append(source)
            continue
        numbered = ((line, row[target], row[source]) for line, row in enumerate(rows, 2))
        t, s, lines = _first_pairs(numbered, k)
        found[source] = ParallelPairs(t, s, {"file": str(path), "format": fmt, "lines": lines})
    return found, missing


# ---------------------------------------------------------------------- encoding with packs
def _resolve_pack(pack: Any) -> Any:
    from crossling.artifacts import LanguagePack

    return pack if isinstance(pack, LanguagePack) else LanguagePack.from_pretrained(pack)


def _pack_key(pack: Any) -> str:
    return str(pack.path) if pack.path is not None else f"<unsaved {pack.language}>"


@torch.no_grad()
def encode_mean_pooled(
    model: Any,
    tokenizer: Any,
    sentences: Sequence[str],
    *,
    batch_size: int = 32,
    max_length: int = 128,
    device: Any = None,
) -> torch.Tensor:
    """Mean-pooled final hidden states of `sentences` with the model's active adapters: [n, hidden]."""
    from crossling.language import mean_pool
    from crossling.tasks import collate, model_max_tokens
    from crossling.tasks.data import encode_sentences

    max_length = min(max_length, model_max_tokens(model, tokenizer))  # longer input would crash
    model.eval()
    out = torch.empty(len(sentences), model.config.hidden_size)
    if not sentences:
        return out
    features = encode_sentences(tokenizer, list(sentences), max_length).features
    order = sorted(range(len(features)), key=lambda i: -len(features[i]["input_ids"]))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = collate([features[i] for i in chunk], tokenizer.pad_token_id)
        if device is not None:
            batch = {key: value.to(device) for key, value in batch.items()}
        hidden = model.base_model(**batch).last_hidden_state
        out[chunk] = mean_pool(hidden, batch["attention_mask"]).float().cpu()
    return out


def _encode_with_pack(
    pack: Any,
    sentences: list[str],
    *,
    base: PathLike | None,
    batch_size: int,
    max_length: int,
    device: Any,
    loaded: Any = None,
) -> dict[str, torch.Tensor]:
    """{sentence: mean-pooled state} through `pack` (language adapter only); `loaded` reuses a PackModel."""
    from crossling.tasks import build_pack_model

    packed = loaded if loaded is not None else build_pack_model(pack, base)
    model = packed.model
    previous = model.active_adapters
    if loaded is None and device is not None:
        model.to(device)
    model.set_active_adapters(packed.language)
    try:
        states = encode_mean_pooled(
            model, packed.tokenizer, sentences, batch_size=batch_size, max_length=max_length, device=device
        )
    finally:
        if loaded is not None:
            model.set_active_adapters(previous)
    return dict(zip(sentences, states, strict=True))


def compute_harmony(
    targets: Any,
    sources: Sequence[Any],
    parallel: ParallelSpec,
    *,
    config: Any = None,
    temperature: float | None = None,
    num_parallel: int | None = None,
    given: Mapping[str, float] | None = None,
    base: PathLike | None = None,
    batch_size: int = 32,
    max_length: int = 128,
    device: Any = None,
    loaded: Mapping[str, Any] | None = None,
) -> HarmonyWeights:
    """Harmony weights of one or more target packs over source packs from K parallel sentences.

    `targets`/`sources` are LanguagePacks or their directories (one target, or a list); languages
    are the packs' codes. `parallel`: see `collect_parallel`. `config` is a HarmonyConfig (or preset
    / dict / YAML) for K and tau; `temperature` / `num_parallel` override it. A source without
    parallel sentences for a target gets its weight from `given` ({source: weight}), or is excluded
    with a warning. Every pack encodes its sentences once, loaded one at a time (`loaded` maps a
    pack directory to an already built PackModel to reuse).
    """
    from crossling.config import HarmonyConfig

    overrides = {"temperature": temperature, "num_parallel": num_parallel}
    config = HarmonyConfig.load(config, **{k: v for k, v in overrides.items() if v is not None})
    target_packs = [_resolve_pack(p) for p in (targets if isinstance(targets, (list, tuple)) else [targets])]
    source_packs = [_resolve_pack(p) for p in sources]
    if not target_packs or not source_packs:
        raise ConfigError("compute_harmony needs at least one target pack and one source pack")
    _check_unique([p.language for p in target_packs], "target")
    _check_unique([p.language for p in source_packs], "source")
    first = target_packs[0]
    for pack in [*target_packs[1:], *source_packs]:
        if pack.base.fingerprint != first.base.fingerprint:
            raise ArtifactError(
                f"LanguagePack {pack.path} is built on {pack.base.describe()} but {first.path} on "
                f"{first.base.describe()}: harmony distances need one base model"
            )
    given = {s: float(w) for s, w in (given or {}).items()}
    source_languages = [p.language for p in source_packs]
    unknown = sorted(set(given) - set(source_languages))
    if unknown:
        raise ConfigError(f"given weights for unknown source(s) {unknown}; sources: {source_languages}")

    plans: dict[str, tuple[dict[str, ParallelPairs], list[str]]] = {}
    needed: dict[str, tuple[Any, set[str]]] = {}
    for pack in target_packs:
        found, missing = collect_parallel(parallel, pack.language, source_languages, config.num_parallel)
        plans[pack.language] = (found, missing)
        needed.setdefault(_pack_key(pack), (pack, set()))[1].update(
            t for p in found.values() for t in p.target
        )
        for source_pack in source_packs:
            if source_pack.language in found:
                pairs = found[source_pack.language]
                needed.setdefault(_pack_key(source_pack), (source_pack, set()))[1].update(pairs.source)
    encoded: dict[str, dict[str, torch.Tensor]] = {}
    for key, (pack, sentences) in needed.items():
        logger.info("encoding %d sentences with LanguagePack %s", len(sentences), pack.path)
        encoded[key] = _encode_with_pack(
            pack,
            sorted(sentences),
            base=base,
            batch_size=batch_size,
            max_length=max_length,
            device=device,
            loaded=(loaded or {}).get(key),
        )

    entries: dict[str, dict[str, Any]] = {}
    for pack in target_packs:
        found, missing = plans[pack.language]
        target_key = _pack_key(pack)
        excluded = [s for s in missing if s not in given]
        if excluded:
            logger.warning(
                "target %s: no parallel sentences for source(s) %s and no given weight: excluded",
                pack.language,
                ", ".join(excluded),
            )
        short = {s: len(p.target) for s, p in found.items() if len(p.target) < config.num_parallel}
        if short:
            logger.warning(
                "target %s: fewer than %d parallel sentences for %s",
                pack.language,
                config.num_parallel,
                short,
            )
        by_source = {p.language: p for p in source_packs}
        target_states = {s: torch.stack([encoded[target_key][t] for t in p.target]) for s, p in found.items()}
        source_states = {
            s: torch.stack([encoded[_pack_key(by_source[s])][x] for x in p.source]) for s, p in found.items()
        }
        used_given = dict(given)  # a given weight also overrides a computed one
        if not source_states and not used_given:
            raise ConfigError(
                f"target {pack.language}: no source has parallel sentences or a given weight "
                f"(sources: {', '.join(source_languages)})"
            )
        weights, report = harmony_weights(
            target_states, source_states, temperature=config.temperature, given=used_given
        )
        entries[pack.language] = {
            "weights": weights,
            "distances": report["distances"],
            "given": used_given,
            "excluded": excluded,
            "parallel": {s: p.origin for s, p in found.items()},
            "report": report,
        }
        if report.get("nearly_uniform"):
            logger.warning(
                "target %s: weights are nearly uniform at temperature %g (max/min %.3f); "
                "temperature %.3g or less makes the nearest source weigh twice the farthest",
                pack.language,
                config.temperature,
                report["max_over_min"],
                report["informative_temperature"] or float("nan"),
            )
    from crossling.artifacts import library_versions

    return HarmonyWeights(
        targets=entries,
        temperature=config.temperature,
        num_parallel=config.num_parallel,
        packs={
            "targets": {p.language: str(p.path) for p in target_packs},
            "sources": {p.language: str(p.path) for p in source_packs},
        },
        settings={"max_length": max_length, "base_model": first.base.to_dict()},
        versions=library_versions(),
    )


def _check_unique(languages: list[str], role: str) -> None:
    dupes = sorted({lang for lang in languages if languages.count(lang) > 1})
    if dupes:
        raise ConfigError(f"several {role} packs for language(s) {', '.join(dupes)}: give one each")


# ---------------------------------------------------------------------- strategies
def combination_weights(
    strategy: str,
    sources: Sequence[str],
    *,
    harmony: Mapping[str, float] | None = None,
    given: Mapping[str, float] | None = None,
    english: str = "en",
) -> tuple[dict[str, float], dict[str, Any]]:
    """The weight of every source's logits under `strategy`, summing to 1: (weights, report).

    harmony: the harmony weights restricted to `sources`, renormalised (a source without one gets 0,
    with a warning); uniform: 1/n; best: 1 for the source with the largest harmony weight; english:
    1 for `english`; given: `given`, normalised (sources it leaves out get 0, with a warning).
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    sources = list(sources)
    report: dict[str, Any] = {"strategy": strategy}
    if strategy == "uniform":
        return {s: 1.0 / len(sources) for s in sources}, report
    if strategy == "english":
        if english not in sources:
            raise ConfigError(
                f"strategy 'english' needs a task adapter whose source language is {english!r}; "
                f"the task adapters' sources are: {', '.join(sources)}"
            )
        return {s: float(s == english) for s in sources}, report
    if strategy == "given":
        if not given:
            raise ConfigError("strategy 'given' needs weights: {source: weight} (CLI: --weights en=0.5 ...)")
        unknown = sorted(set(given) - set(sources))
        if unknown:
            raise ConfigError(
                f"weights given for source(s) {unknown} that no task adapter has; sources: {sources}"
            )
        raw = dict(given)
    else:
        if harmony is None:
            raise ConfigError(
                f"strategy {strategy!r} needs harmony weights: pass weights= (a HarmonyWeights file) or "
                "parallel= sentences and source packs (CLI: --weights FILE or --parallel ...), "
                "or choose strategy 'uniform'"
            )
        raw = {s: float(harmony[s]) for s in sources if s in harmony}
        report["harmony"] = dict(harmony)
    for source, weight in raw.items():
        if not weight >= 0:
            raise ConfigError(f"weight of source {source!r} must be >= 0, got {weight!r}")
    left_out = [s for s in sources if s not in raw]
    if left_out:
        logger.warning("no weight for source(s) %s: their task adapters are left out", ", ".join(left_out))
        report["left_out"] = left_out
    if strategy == "best":
        if not raw:
            raise ConfigError(f"no harmony weight for any of the sources {sources}")
        best = max(raw, key=raw.__getitem__)
        report["best"] = best
        return {s: float(s == best) for s in sources}, report
    total = sum(raw.values())
    if total <= 0:
        raise ConfigError(f"the weights of the task adapters' sources sum to 0: {raw}")
    if abs(total - 1.0) > 1e-6:
        report["renormalised_from"] = total
    return {s: raw.get(s, 0.0) / total for s in sources}, report


# ---------------------------------------------------------------------- the predictor
@dataclasses.dataclass
class MultiSourcePrediction:
    """Labels and probabilities of a multi-source prediction.

    Pairs: `labels[i]` is a label, `probabilities[i]` a list in `label_names` order. Tagging:
    `labels[i]` is a tag per word, `probabilities[i]` a list per word (None for a word that lost
    all its subwords to truncation and got the fallback tag).
    """

    labels: list[Any]
    probabilities: list[Any]
    label_names: list[str]
    weights: dict[str, float]
    report: dict[str, Any] = dataclasses.field(default_factory=dict)


def _config_temperature(config: Any) -> float | None:
    """The temperature a HarmonyConfig argument (instance, mapping, preset or YAML) sets, if it sets one."""
    from crossling.config import HarmonyConfig

    if config is None:
        return None
    if isinstance(config, HarmonyConfig):
        return config.temperature
    if isinstance(config, Mapping):
        return config.get("temperature")
    if str(config) in HarmonyConfig.PRESETS:
        return HarmonyConfig.PRESETS[str(config)].get("temperature")
    import yaml

    raw = yaml.safe_load(Path(config).read_text(encoding="utf-8"))  # a YAML/JSON file: what it sets
    if not isinstance(raw, Mapping):
        return None
    preset = HarmonyConfig.PRESETS.get(str(raw.get("preset")), {})
    return raw.get("temperature", preset.get("temperature"))


def _check_weights_for_strategy(strategy: str, weights: Any, given: Any, parallel: Any) -> None:
    """Weights or parallel sentences the strategy would not use are not silently dropped: a warning
    where the strategy says so itself (an ablation added to a harmony command), else an error."""
    if strategy in ("uniform", "english"):
        unused = [name for name, value in (("weights", weights), ("parallel sentences", parallel)) if value]
        if unused:
            logger.warning("strategy %s uses no %s: they are ignored", strategy, " or ".join(unused))
        return
    if strategy == "given" and parallel is not None:
        raise ConfigError(
            "strategy 'given' computes no harmony weights, so the parallel sentences would be unused; "
            "drop them, or choose strategy 'harmony' (with {source: weight} weights, those fix the "
            "sources without parallel sentences)"
        )
    if strategy in HARMONY_STRATEGIES and given is not None and parallel is None:
        raise ConfigError(
            f"strategy {strategy!r} computes harmony weights from parallel sentences; {{source: weight}} "
            "weights only fill in sources without them (or use them alone with strategy 'given')"
        )


def _adapter_name(index: int, language: str) -> str:
    safe = "".join(c if c.isalnum() else "_" for c in language)
    return f"ms{index}_{safe}"


class MultiSourcePredictor:
    """Task adapters of several source languages over a target LanguagePack, combined by weights.

    Build it with `from_pretrained`. Only sources with a non-zero weight are loaded and run; they
    run in one forward pass as ``Stack(target_language, Parallel(...))``.
    """

    def __init__(
        self,
        packed: Any,
        adapters: Sequence[Any],
        weights: Mapping[str, float],
        *,
        strategy: str,
        harmony: HarmonyWeights | None = None,
        max_length: int = 128,
        device: Any = None,
        report: dict[str, Any] | None = None,
    ):
        from crossling.artifacts import check_same_labels
        from crossling.tasks import attach_task_adapter

        self.packed = packed
        self.model = packed.model
        self.tokenizer = packed.tokenizer
        self.language = packed.language
        self.target = packed.pack.language if packed.pack is not None else None
        self.all_adapters = list(adapters)
        self.labels = check_same_labels(self.all_adapters)
        self.task = self.all_adapters[0].task
        self.weights = {ta.source_language: float(weights[ta.source_language]) for ta in self.all_adapters}
        self.strategy = strategy
        self.harmony = harmony
        from crossling.tasks import model_max_tokens

        self.max_length = min(max_length, model_max_tokens(self.model, self.tokenizer))
        self.device = device
        self.report = dict(report or {})
        self.adapters = [ta for ta in self.all_adapters if self.weights[ta.source_language] > 0]
        if not self.adapters:
            raise ConfigError("every source has weight 0: nothing to predict with")
        self.names = []
        # which TaskAdapter each name holds in this model: predictors sharing a loaded model share an
        # adapter only when it is the very same one, and otherwise each gets names of its own (reusing
        # or replacing a name would make one predictor run another's weights)
        attached = self.model.__dict__.setdefault("_crossling_attached", {})
        for index, ta in enumerate(self.adapters):
            name = next((n for n, held in attached.items() if held is ta), None)
            if name is None:
                base_name = _adapter_name(index, ta.source_language)
                name, k = base_name, 1
                while name in self.model.adapters_config.adapters:
                    name, k = f"{base_name}_{k}", k + 1
                attach_task_adapter(self.model, ta, name)
                attached[name] = ta
            self.names.append(name)
        # each head's logits in our label order
        self._order = [torch.tensor([ta.label2id[label] for label in self.labels]) for ta in self.adapters]
        self._weights = torch.tensor(
            [self.weights[ta.source_language] for ta in self.adapters], dtype=torch.float32
        )
        if device is not None:
            self.model.to(device)
        self.model.eval()
        self.activate()

    @property
    def sources(self) -> list[str]:
        """Source languages whose task adapters run (non-zero weight), in order."""
        return [ta.source_language for ta in self.adapters]

    @property
    def setup(self) -> Any:
        from adapters.composition import Parallel, Stack

        inner = Parallel(*self.names) if len(self.names) > 1 else self.names[0]
        return Stack(self.language, inner) if self.language else inner

    def activate(self) -> None:
        from adapters.composition import Parallel

        self.model.set_active_adapters(self.setup)
        self.model.active_head = Parallel(*self.names) if len(self.names) > 1 else self.names[0]

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls,
        target_pack: Any,
        task_adapters: Sequence[Any],
        *,
        weights: Any = None,
        parallel: ParallelSpec | None = None,
        source_packs: Sequence[Any] | None = None,
        strategy: str | None = None,
        config: Any = None,
        temperature: float | None = None,
        num_parallel: int | None = None,
        english: str = "en",
        base: PathLike | None = None,
        max_length: int | None = None,
        batch_size: int = 32,
        device: Any = None,
    ) -> MultiSourcePredictor:
        """Load the target pack and the task adapters, and settle the weights.

        `weights`: a HarmonyWeights (or the path of its JSON) for the harmony/best strategies
        (`temperature` re-weights its stored distances), or a ``{source: weight}`` mapping (implies
        strategy "given"). Without harmony weights, `parallel`
        sentences compute them here (see `compute_harmony`) with `source_packs`, which default to
        the packs the task adapters were trained on. `strategy` defaults to the config's
        ("harmony"). `config` is a HarmonyConfig (preset / dict / YAML) for K, tau and the strategy.
        """
        from crossling.artifacts import TaskAdapter
        from crossling.config import HarmonyConfig
        from crossling.tasks import build_pack_model

        given = dict(weights) if isinstance(weights, Mapping) else None
        if strategy is None and given is not None:
            strategy = "given"
        # a weights file keeps the temperature it was computed at unless one is asked for, here or in
        # the config
        asked_temperature = temperature if temperature is not None else _config_temperature(config)
        overrides = {"temperature": temperature, "num_parallel": num_parallel, "strategy": strategy}
        config = HarmonyConfig.load(config, **{k: v for k, v in overrides.items() if v is not None})
        strategy = config.strategy
        _check_weights_for_strategy(strategy, weights, given, parallel)
        pack = _resolve_pack(target_pack)
        adapters = [
            ta if isinstance(ta, TaskAdapter) else TaskAdapter.from_pretrained(ta) for ta in task_adapters
        ]
        if not adapters:
            raise ConfigError("no task adapters given")
        _check_task_adapters(adapters, pack)
        sources = [ta.source_language for ta in adapters]

        harmony = None
        if isinstance(weights, HarmonyWeights):
            harmony = weights
        elif isinstance(weights, (str, os.PathLike)):
            harmony = HarmonyWeights.from_pretrained(weights)
        elif weights is not None and given is None:
            raise ConfigError(
                "weights must be a HarmonyWeights, its file, or {source: weight}; "
                f"got {type(weights).__name__}"
            )
        if harmony is not None and asked_temperature not in (None, harmony.temperature):
            harmony = harmony.with_temperature(asked_temperature)  # the stored distances at another tau
        packed = build_pack_model(pack, base)
        if device is not None:  # compute_harmony encodes with this model and sends batches to `device`
            packed.model.to(device)
        if harmony is None and parallel is not None and strategy in HARMONY_STRATEGIES:
            packs = list(source_packs) if source_packs is not None else _training_packs(adapters)
            harmony = compute_harmony(
                pack,
                packs,
                parallel,
                config=config,
                base=base,
                batch_size=batch_size,
                max_length=max_length or 128,
                device=device,
                loaded={_pack_key(pack): packed},
                given=given,  # with strategy harmony: the weights of sources without parallel sentences
            )
        chosen, report = combination_weights(
            strategy,
            sources,
            harmony=harmony.for_target(pack.language) if harmony is not None else None,
            given=given,
            english=english,
        )
        if max_length is None:
            max_length = max(int(ta.config.get("training", {}).get("max_length", 128)) for ta in adapters)
        return cls(
            packed,
            adapters,
            chosen,
            strategy=strategy,
            harmony=harmony,
            max_length=max_length,
            device=device,
            report=report,
        )

    # ------------------------------------------------------------------ logits
    def _batch(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        batch = {k: v for k, v in batch.items() if k != "labels"}
        if self.device is not None:
            batch = {k: v.to(self.device) for k, v in batch.items()}
        return batch

    @torch.no_grad()
    def source_logits(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Every running source's logits from one pass, in `labels` order: [sources, batch, (len,) labels]."""
        self.activate()
        outputs = self.model(**self._batch(batch))
        heads = [outputs.logits] if len(self.names) == 1 else [out.logits for out in outputs]
        return torch.stack(
            [
                logits.index_select(-1, order.to(logits.device))
                for logits, order in zip(heads, self._order, strict=True)
            ]
        ).float()

    def combine(self, per_source: torch.Tensor) -> torch.Tensor:
        """sum_s w_s * logits_s over the first dimension."""
        weights = self._weights.to(per_source.device).view(-1, *([1] * (per_source.ndim - 1)))
        return (weights * per_source).sum(0)

    @torch.no_grad()
    def logits(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Combined logits of a tokenised batch: [batch, (length,) labels]."""
        return self.combine(self.source_logits(batch))

    # ------------------------------------------------------------------ prediction
    def predict(self, texts: Sequence[Any], *, batch_size: int = 32) -> MultiSourcePrediction:
        """Tagging: texts are sentences (split on whitespace) or word lists; pair tasks: (a, b) pairs."""
        from crossling.tasks.labels import is_tagging

        if is_tagging(self.task):
            return self.predict_tokens(
                [t.split() if isinstance(t, str) else list(t) for t in texts], batch_size=batch_size
            )
        bad = [t for t in texts if isinstance(t, str) or len(t) != 2]
        if bad:
            raise ConfigError(
                f"task {self.task} classifies sentence pairs: give (premise, hypothesis) pairs, or use "
                f"predict_pairs; got {bad[0]!r}"
            )
        return self.predict_pairs([t[0] for t in texts], [t[1] for t in texts], batch_size=batch_size)

    def predict_pairs(
        self, premises: Sequence[str], hypotheses: Sequence[str], *, batch_size: int = 32
    ) -> MultiSourcePrediction:
        from crossling.tasks.labels import is_tagging

        if is_tagging(self.task):
            raise ConfigError(f"task {self.task} tags words: use predict_tokens or predict")
        if len(premises) != len(hypotheses):
            raise ConfigError(f"{len(premises)} premises but {len(hypotheses)} hypotheses")
        records = [{"text_a": a, "text_b": b} for a, b in zip(premises, hypotheses, strict=True)]
        return self.predict_records(records, batch_size=batch_size)

    def predict_tokens(
        self, words: Sequence[Sequence[str]], *, batch_size: int = 32
    ) -> MultiSourcePrediction:
        from crossling.tasks.labels import is_tagging

        if not is_tagging(self.task):
            raise ConfigError(f"task {self.task} classifies sentence pairs: use predict_pairs")
        return self.predict_records([{"tokens": list(w)} for w in words], batch_size=batch_size)

    def predict_records(
        self, records: Sequence[Mapping[str, Any]], *, batch_size: int = 32
    ) -> MultiSourcePrediction:
        """Records as the task readers give them: ``{"tokens"}`` or ``{"text_a", "text_b"}``."""
        labels: list[Any] = []
        probabilities: list[Any] = []
        report: dict[str, Any] = {}
        for _, part in self.predict_stream(records, batch_size=batch_size, chunk_size=max(len(records), 1)):
            labels.extend(part.labels)
            probabilities.extend(part.probabilities)
            report = _add_reports(report, part.report)
        return MultiSourcePrediction(labels, probabilities, list(self.labels), self.running_weights, report)

    @property
    def running_weights(self) -> dict[str, float]:
        return {s: self.weights[s] for s in self.sources}

    def predict_stream(
        self, records: Iterable[Mapping[str, Any]], *, batch_size: int = 32, chunk_size: int = 1024
    ) -> Iterator[tuple[list[Mapping[str, Any]], MultiSourcePrediction]]:
        """(records, prediction) per chunk of `chunk_size` records read lazily from `records`."""
        chunk: list[Mapping[str, Any]] = []
        for record in records:
            chunk.append(record)
            if len(chunk) >= chunk_size:
                yield chunk, self._predict_chunk(chunk, batch_size)
                chunk = []
        if chunk:
            yield chunk, self._predict_chunk(chunk, batch_size)

    def _predict_chunk(self, records: list[Mapping[str, Any]], batch_size: int) -> MultiSourcePrediction:
        from crossling.tasks import collate, encode_records
        from crossling.tasks.labels import is_tagging

        tagging = is_tagging(self.task)
        for number, record in enumerate(records, 1):
            keys = ("tokens",) if tagging else ("text_a", "text_b")
            if any(key not in record for key in keys):
                raise ConfigError(f"record {number} has no {' / '.join(keys)}: {dict(record)!r}")
        encoded = encode_records(self.task, self.tokenizer, records, None, self.max_length)
        features = encoded.features
        order = sorted(range(len(features)), key=lambda i: -len(features[i]["input_ids"]))
        probs: list[Any] = [None] * len(features)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = collate([features[i] for i in chunk], self.tokenizer.pad_token_id)
            p = torch.softmax(self.logits(batch), dim=-1).cpu()
            for row, i in enumerate(chunk):
                probs[i] = p[row, : len(features[i]["input_ids"])] if tagging else p[row]
        report = encoded.report()
        if not tagging:
            labels = [self.labels[int(p.argmax())] for p in probs]
            return MultiSourcePrediction(
                labels, [p.tolist() for p in probs], list(self.labels), self.running_weights, report
            )
        fallback = "O" if "O" in self.labels else self.labels[0]
        labels, per_word, filled = [], [], 0
        for i, record in enumerate(records):
            n = len(record["tokens"])
            tags: list[str | None] = [None] * n
            word_probs: list[Any] = [None] * n
            previous = None
            for position, word in enumerate(encoded.word_ids[i]):
                if word is not None and word != previous:
                    tags[word] = self.labels[int(probs[i][position].argmax())]
                    word_probs[word] = probs[i][position].tolist()
                previous = word
            filled += sum(1 for t in tags if t is None)
            labels.append([t if t is not None else fallback for t in tags])
            per_word.append(word_probs)
        report["words_filled_with_fallback"] = filled
        return MultiSourcePrediction(labels, per_word, list(self.labels), self.running_weights, report)

    def describe(self) -> str:
        """One line: target, strategy and the weight of every source."""
        shown = ", ".join(f"{s}={w:.3f}" for s, w in self.weights.items())
        return f"target {self.target or '(base)'}, {self.task}, strategy {self.strategy}: {shown}"


def _add_reports(total: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    out = dict(total)
    for key, value in part.items():
        out[key] = out.get(key, 0) + value if isinstance(value, (int, float)) else value
    return out


def _check_task_adapters(adapters: Sequence[Any], pack: Any) -> None:
    from crossling.artifacts import check_same_labels

    check_same_labels(list(adapters))
    languages = [ta.source_language for ta in adapters]
    dupes = sorted({lang for lang in languages if languages.count(lang) > 1})
    if dupes:
        paths = [str(ta.path) for ta in adapters if ta.source_language in dupes]
        raise ConfigError(
            f"several task adapters for source language(s) {', '.join(dupes)} ({', '.join(paths)}): "
            "the weights are per source language, give one each"
        )
    for ta in adapters:
        if ta.config.get("mode") == "finetune":
            raise ArtifactError(
                f"{ta.path} is a fully fine-tuned model, not an adapter: it cannot run in a multi-source pass"
            )
        ta.base.check_matches(pack.base, f"TaskAdapter {ta.path} (with LanguagePack {pack.path})")


def _training_packs(adapters: Sequence[Any]) -> list[str]:
    packs = []
    for ta in adapters:
        if not ta.language_pack or not Path(ta.language_pack).is_dir():
            raise CrosslingError(
                f"{ta.path} was trained on LanguagePack {ta.language_pack or '(none recorded)'}, which is "
                "not available: pass source packs for the harmony weights (source_packs= / --source-packs)"
            )
        packs.append(ta.language_pack)
    return packs
