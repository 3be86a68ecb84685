"""The multilingual training corpus: `lang=path` specs, reading, cleaning, held-out split, and
language-balanced sampling with p_l proportional to n_l ** alpha.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossling.errors import ConfigError, CrosslingError

_LANGUAGE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")

CorpusSpec = Mapping[str, "str | os.PathLike[str] | Sequence[str | os.PathLike[str]]"]


def parse_corpus_specs(specs: Iterable[str]) -> dict[str, list[Path]]:
    """`["en=a.txt", "es=b.txt", "en=c.txt"]` -> {"en": [a.txt, c.txt], "es": [b.txt]}, checked.

    Several files for one language are read in turn. Files must exist (checked here, so a typo fails
    before any model is loaded).
    """
    corpus: dict[str, list[Path]] = {}
    for spec in specs:
        language, sep, path = spec.partition("=")
        language, path = language.strip(), path.strip()
        if not sep or not language or not path:
            raise ConfigError(
                f"--corpus {spec!r}: expected LANG=PATH, e.g. --corpus en=wiki.en.txt es=wiki.es.txt"
            )
        corpus.setdefault(language, []).append(Path(path))
    return normalise_corpus(corpus)


def normalise_corpus(corpus: CorpusSpec) -> dict[str, list[Path]]:
    """{lang: path or [paths]} -> {lang: [Path, ...]}; checks language codes and that files exist."""
    if not corpus:
        raise ConfigError(
            "no corpus given: pass at least one LANG=PATH (two or more for the adversarial term)"
        )
    out: dict[str, list[Path]] = {}
    for language, paths in corpus.items():
        if not _LANGUAGE.fullmatch(str(language)):
            raise ConfigError(
                f"corpus language {language!r} is not a language code "
                "(letters, digits, '-' or '_', e.g. 'en')"
            )
        items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        if not items:
            raise ConfigError(f"corpus language {language!r} has no file")
        for path in map(Path, items):
            if not path.exists():
                raise CrosslingError(f"corpus file for {language!r} does not exist: {path}")
            if path.is_dir():
                raise CrosslingError(f"corpus path for {language!r} is a directory, expected a file: {path}")
        out[str(language)] = [Path(p) for p in items]
    return out


def read_language_lines(paths: Sequence[Path]) -> list[str]:
    """Every sentence of `paths`, in order (`crossling.data.read_sentences`: the format is guessed)."""
    from crossling.data import read_sentences

    return [line for path in paths for line in read_sentences(path)]


@dataclass
class LanguageCorpus:
    """One language's cleaned, deduplicated lines split into training and held-out parts."""

    language: str
    train: list[str]
    held_out: list[str]
    report: dict[str, Any] = field(default_factory=dict)


def prepare_language(
    language: str,
    lines: list[str],
    *,
    clean: bool = True,
    max_lines: int = 0,
    eval_lines: int = 100,
    seed: int = 0,
    sources: Sequence[str] = (),
) -> LanguageCorpus:
    """Clean (UniBERT heuristics), deduplicate, cap and split one language's lines.

    Duplicates are dropped (first occurrence kept): NLI-style files repeat each premise, and repeated
    lines would only skew the sampling. The held-out part is a seeded sample of min(eval_lines, 10%).
    """
    from crossling.data.cleaning import CleaningReport, clean_lines

    report: dict[str, Any] = {"sources": list(sources), "raw_lines": len(lines)}
    if clean:
        cleaning = CleaningReport()
        kept = list(clean_lines(lines, report=cleaning))
        report["cleaning"] = cleaning.as_dict()
    else:
        kept = [line.strip() for line in lines if line.strip()]
    unique = list(dict.fromkeys(kept))
    report["duplicates_dropped"] = len(kept) - len(unique)
    if max_lines:
        unique = unique[:max_lines]
    if not unique:
        raise CrosslingError(
            f"the corpus of {language!r} has no usable line after cleaning "
            f"({', '.join(sources) or 'no file'})"
        )
    n_eval = min(eval_lines, len(unique) // 10)
    order = list(range(len(unique)))
    random.Random(f"{seed}-{language}").shuffle(order)
    held = set(order[:n_eval])
    train = [line for i, line in enumerate(unique) if i not in held]
    held_out = [unique[i] for i in sorted(held)]
    report.update({"lines": len(unique), "train_lines": len(train), "eval_lines": len(held_out)})
    return LanguageCorpus(language, train, held_out, report)


def sampling_probabilities(counts: Mapping[str, int], alpha: float) -> dict[str, float]:
    """p_l = n_l^alpha / sum_k n_k^alpha (Conneau & Lample 2019): alpha 1 proportional, 0 uniform."""
    if not counts or any(n <= 0 for n in counts.values()):
        raise CrosslingError(f"every language needs at least one line to sample from: {dict(counts)}")
    weights = {lang: float(n) ** alpha for lang, n in counts.items()}
    total = sum(weights.values())
    return {lang: w / total for lang, w in weights.items()}


def allocate(probabilities: Mapping[str, float], total: int) -> dict[str, int]:
    """Split `total` draws between languages in proportion to `probabilities` (largest remainder)."""
    exact = {lang: p * total for lang, p in probabilities.items()}
    counts = {lang: int(x) for lang, x in exact.items()}
    by_remainder = sorted(exact, key=lambda lang: (exact[lang] - counts[lang], lang), reverse=True)
    for lang in by_remainder[: total - sum(counts.values())]:
        counts[lang] += 1
    return counts


def balanced_sample(
    counts: Mapping[str, int], alpha: float, total: int, seed: int = 0
) -> list[tuple[str, int]]:
    """`total` (language, line index) draws with language shares p_l ~ n_l^alpha.

    Within a language lines are taken without replacement, in a seeded order, and a fresh order starts
    when a language runs out: a small language is repeated evenly rather than at random, and a large
    one contributes distinct lines. Order across languages is left to the trainer's shuffling.
    """
    shares = allocate(sampling_probabilities(counts, alpha), total)
    draws: list[tuple[str, int]] = []
    for language in sorted(shares):
        rng = random.Random(f"{seed}-sample-{language}")
        n, need = counts[language], shares[language]
        taken: list[int] = []
        while len(taken) < need:
            order = list(range(n))
            rng.shuffle(order)
            taken.extend(order[: need - len(taken)])
        draws.extend((language, i) for i in taken)
    return draws
