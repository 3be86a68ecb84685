"""Code-switch augmentation (CoSDA-ML style) and bilingual dictionaries to drive it.

    from crossling.codeswitch import read_dictionary, code_switch_records
    dictionaries = {"de": read_dictionary("en-de.tsv"), "sw": read_dictionary("en-sw.tsv")}
    switched, report = code_switch_records("nli", records, dictionaries, ratio=0.3, seed=0)

Dictionaries come from three places:

* :func:`read_dictionary` — a user's TSV file, one ``source<TAB>target`` word pair a line (MUSE's
  format with a tab; a space-separated pair is accepted too). Blank lines and ``#`` comments are
  skipped; any other line without exactly two fields is refused naming ``file:line``.
* :func:`induce_from_vectors` — mutual nearest neighbours between two *aligned* word-vector spaces
  (for instance the fastText spaces of the embedding step after Procrustes, or two spaces trained
  with :func:`crossling.embeddings.train_token_vectors`); `align_on` first rotates one onto the
  other with orthogonal Procrustes on given anchor pairs (identical strings are a common choice).
* :func:`induce_from_token_vectors` — the same on the fastText token spaces the embedding step trains
  (`crossling.embeddings.train_token_vectors`), over whole-word tokens, anchored on shared words.
* :func:`induce_from_parallel` — word alignments from sentence-aligned parallel text: the Dice
  coefficient of sentence co-occurrence, kept where the two words are each other's best partner
  (a simple, deterministic stand-in for fast_align / IBM model 1; good enough for frequent words).

Code-switching follows CoSDA-ML (Qin et al., 2020): each word of a sentence that some dictionary
can translate is replaced, with probability `ratio`, by its translation in a language drawn at
random among the dictionaries that know it; everything is seeded. Differences from CoSDA-ML: we
look words up lower-cased when the exact form is missing (and keep an initial capital), keep the
punctuation around a word, and replace words only (CoSDA-ML also samples sentences first; here the
caller decides which records to switch).
"""

from __future__ import annotations

import os
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossling.errors import ConfigError, CrosslingError, DataFormatError

Dictionary = dict[str, list[str]]  # source word -> its translations (first = most reliable)

_EDGE = re.compile(r"^(\W*)(.*?)(\W*)$", re.UNICODE)


# ---------------------------------------------------------------------- dictionaries
def read_dictionary(path: str | os.PathLike[str]) -> Dictionary:
    """Word pairs of a TSV file (``source<TAB>target``; one pair a line; repeated sources collect
    several translations). Bad lines raise DataFormatError naming ``file:line``."""
    path = Path(path)
    if not path.is_file():
        raise CrosslingError(f"dictionary {path} does not exist")
    out: Dictionary = {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataFormatError(path, None, f"not UTF-8 text ({err})") from None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts = stripped.split("\t") if "\t" in stripped else stripped.split()
        parts = [p.strip() for p in parts]
        if len(parts) != 2 or not all(parts):
            raise DataFormatError(
                path, number, f"expected 'source<TAB>target' (two fields), got {len(parts)}: {line!r}"
            )
        source, target = parts
        translations = out.setdefault(source, [])
        if target not in translations:
            translations.append(target)
    if not out:
        raise DataFormatError(path, None, "no word pairs found")
    return out


def write_dictionary(dictionary: Mapping[str, Sequence[str]], path: str | os.PathLike[str]) -> Path:
    """Write `dictionary` as TSV word pairs (readable by `read_dictionary`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{s}\t{t}\n" for s, targets in dictionary.items() for t in targets]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def induce_from_vectors(
    source_words: Sequence[str],
    source_vectors: Any,
    target_words: Sequence[str],
    target_vectors: Any,
    *,
    align_on: Iterable[tuple[str, str]] | None = None,
    min_similarity: float = 0.0,
) -> Dictionary:
    """Dictionary of mutual nearest neighbours (cosine) between two word-vector spaces.

    The spaces must be aligned; pass `align_on` (anchor word pairs) to rotate the source space onto
    the target one with orthogonal Procrustes first. Pairs below `min_similarity` are dropped, and so
    are identical strings (copying a word is not a translation worth switching to).
    """
    import torch

    from crossling.embeddings.similarity import mutual_nearest_neighbours, normalize_rows, procrustes

    a = torch.as_tensor(source_vectors, dtype=torch.float32)
    b = torch.as_tensor(target_vectors, dtype=torch.float32)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise CrosslingError(
            f"word vectors must be two matrices of one width; got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.shape[0] != len(source_words) or b.shape[0] != len(target_words):
        raise CrosslingError("one vector per word is needed on each side")
    a, b = normalize_rows(a, center=True), normalize_rows(b, center=True)
    if align_on is not None:
        s_index = {w: i for i, w in enumerate(source_words)}
        t_index = {w: i for i, w in enumerate(target_words)}
        anchors = [(s_index[s], t_index[t]) for s, t in align_on if s in s_index and t in t_index]
        if len(anchors) < 2:
            raise CrosslingError(f"align_on: only {len(anchors)} anchor pair(s) found in both vocabularies")
        rows_a = torch.tensor([i for i, _ in anchors])
        rows_b = torch.tensor([j for _, j in anchors])
        a = a @ procrustes(a[rows_a], b[rows_b])
    i, j = mutual_nearest_neighbours(a, b)
    scores = (a[i] * b[j]).sum(-1)
    out: Dictionary = {}
    for si, tj, score in zip(i.tolist(), j.tolist(), scores.tolist(), strict=True):
        s, t = source_words[si], target_words[tj]
        if score >= min_similarity and s != t:
            out[s] = [t]
    return out


def _whole_words(tokenizer: Any, ids: Sequence[int]) -> dict[str, int]:
    """{word: position in `ids`} for tokens that are whole alphabetic words (▁/Ġ-marked word starts,
    or WordPiece tokens without ##), markers stripped; the first occurrence of a word wins."""
    tokens = tokenizer.convert_ids_to_tokens([int(i) for i in ids])
    wordpiece = any(t.startswith("##") for t in tokenizer.get_vocab())
    out: dict[str, int] = {}
    for position, token in enumerate(tokens):
        if token is None:
            continue
        if token[:1] in ("▁", "Ġ"):
            word = token[1:]
        elif wordpiece and not token.startswith("##"):
            word = token
        else:
            continue
        if len(word) > 1 and word.isalpha():
            out.setdefault(word, position)
    return out


def induce_from_token_vectors(
    source: Any,
    source_tokenizer: Any,
    target: Any,
    target_tokenizer: Any,
    *,
    align_on_identical: bool = True,
    min_similarity: float = 0.0,
) -> Dictionary:
    """Dictionary from the fastText token spaces of the embedding step
    (`crossling.embeddings.train_token_vectors` on a source and a target corpus): whole-word tokens
    of each side, rotated onto each other with Procrustes on the words both vocabularies share
    (`align_on_identical`; names, numbers, loanwords), then mutual nearest neighbours."""
    source_words = _whole_words(source_tokenizer, source.ids)
    target_words = _whole_words(target_tokenizer, target.ids)
    if not source_words or not target_words:
        raise CrosslingError("no whole-word tokens with vectors on one side: cannot induce a dictionary")
    s_list, t_list = list(source_words), list(target_words)
    s_vectors = source.vectors[[source_words[w] for w in s_list]]
    t_vectors = target.vectors[[target_words[w] for w in t_list]]
    anchors = [(w, w) for w in s_list if w in target_words] if align_on_identical else None
    return induce_from_vectors(
        s_list, s_vectors, t_list, t_vectors, align_on=anchors, min_similarity=min_similarity
    )


def _words(sentence: Any) -> list[str]:
    tokens = sentence if isinstance(sentence, (list, tuple)) else str(sentence).split()
    out = []
    for token in tokens:
        core = _EDGE.match(token).group(2).lower()  # type: ignore[union-attr]
        if core:
            out.append(core)
    return out


def induce_from_parallel(
    source_sentences: Sequence[Any],
    target_sentences: Sequence[Any],
    *,
    min_count: int = 2,
    min_dice: float = 0.3,
    max_sentence_frequency: float = 0.5,
) -> Dictionary:
    """Dictionary from sentence-aligned parallel text: pairs whose Dice coefficient of sentence
    co-occurrence is at least `min_dice`, seen together at least `min_count` times, and that are each
    other's best partner. Words in more than `max_sentence_frequency` of the sentences (function
    words) are left out."""
    if len(source_sentences) != len(target_sentences):
        raise CrosslingError(
            f"parallel text must be sentence-aligned: {len(source_sentences)} source vs "
            f"{len(target_sentences)} target sentences"
        )
    n = len(source_sentences)
    if n == 0:
        raise CrosslingError("no parallel sentences to induce a dictionary from")
    src_count: Counter[str] = Counter()
    tgt_count: Counter[str] = Counter()
    joint: Counter[tuple[str, str]] = Counter()
    bags = []
    for s, t in zip(source_sentences, target_sentences, strict=True):
        ws, wt = set(_words(s)), set(_words(t))
        src_count.update(ws)
        tgt_count.update(wt)
        bags.append((ws, wt))
    limit = max_sentence_frequency * n
    for ws, wt in bags:
        ws = {w for w in ws if src_count[w] <= limit}
        wt = {w for w in wt if tgt_count[w] <= limit}
        for a in ws:
            for b in wt:
                joint[(a, b)] += 1
    best_s: dict[str, tuple[float, str]] = {}
    best_t: dict[str, tuple[float, str]] = {}
    for (a, b), c in joint.items():
        if c < min_count:
            continue
        dice = 2 * c / (src_count[a] + tgt_count[b])
        if dice > best_s.get(a, (-1.0, ""))[0] or (dice == best_s[a][0] and b < best_s[a][1]):
            best_s[a] = (dice, b)
        if dice > best_t.get(b, (-1.0, ""))[0] or (dice == best_t[b][0] and a < best_t[b][1]):
            best_t[b] = (dice, a)
    out: Dictionary = {}
    for a in sorted(best_s):
        dice, b = best_s[a]
        if dice >= min_dice and best_t[b][1] == a and a != b:
            out[a] = [b]
    return out


# ---------------------------------------------------------------------- code-switching
@dataclass
class CodeSwitchReport:
    """What code-switching did: dictionary sizes and a sample of pairs, words seen/switchable/switched."""

    dictionary_sizes: dict[str, int] = field(default_factory=dict)
    dictionary_sample: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    ratio: float = 0.0
    seed: int = 0
    words: int = 0
    switchable: int = 0
    switched: int = 0
    by_language: dict[str, int] = field(default_factory=dict)
    examples: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dictionary_sizes": self.dictionary_sizes,
            "dictionary_sample": {k: [list(p) for p in v] for k, v in self.dictionary_sample.items()},
            "ratio": self.ratio,
            "seed": self.seed,
            "words": self.words,
            "switchable_words": self.switchable,
            "switched_words": self.switched,
            "switched_fraction_of_switchable": round(self.switched / self.switchable, 4)
            if self.switchable
            else 0.0,
            "by_language": self.by_language,
            "examples": [list(e) for e in self.examples],
        }


def dictionary_report(dictionaries: Mapping[str, Mapping[str, Sequence[str]]], sample: int = 5) -> dict:
    """Size and a sample of pairs (first entries in sorted order) per dictionary language."""
    return {
        "sizes": {lang: len(d) for lang, d in dictionaries.items()},
        "sample": {lang: [(s, d[s][0]) for s in sorted(d)[:sample]] for lang, d in dictionaries.items()},
    }


def _lookup(word: str, dictionary: Mapping[str, Sequence[str]]) -> str | None:
    found = dictionary.get(word)
    if found:
        return found[0]
    lower = word.lower()
    found = dictionary.get(lower)
    if found:
        translation = found[0]
        return translation[:1].upper() + translation[1:] if word[:1].isupper() else translation
    return None


class CodeSwitcher:
    """Replaces words by dictionary translations with probability `ratio`, from a seeded generator."""

    def __init__(
        self,
        dictionaries: Mapping[str, Mapping[str, Sequence[str]]],
        *,
        ratio: float = 0.3,
        seed: int = 0,
    ) -> None:
        if not dictionaries or not any(dictionaries.values()):
            raise ConfigError("code-switching needs at least one non-empty bilingual dictionary")
        if not 0.0 <= ratio <= 1.0:
            raise ConfigError(f"code-switch ratio {ratio} is outside [0, 1]")
        self.dictionaries = {lang: dict(d) for lang, d in sorted(dictionaries.items())}
        self.ratio = ratio
        self.rng = random.Random(seed)
        info = dictionary_report(self.dictionaries)
        self.report = CodeSwitchReport(
            dictionary_sizes=info["sizes"], dictionary_sample=info["sample"], ratio=ratio, seed=seed
        )

    def switch_words(self, words: Sequence[str]) -> list[str]:
        out = []
        for token in words:
            prefix, core, suffix = _EDGE.match(token).groups()  # type: ignore[union-attr]
            self.report.words += 1
            options = [(lang, t) for lang, d in self.dictionaries.items() if core and (t := _lookup(core, d))]
            if not options:
                out.append(token)
                continue
            self.report.switchable += 1
            if self.rng.random() < self.ratio:
                lang, translation = options[self.rng.randrange(len(options))]
                self.report.switched += 1
                self.report.by_language[lang] = self.report.by_language.get(lang, 0) + 1
                out.append(f"{prefix}{translation}{suffix}")
            else:
                out.append(token)
        return out

    def switch(self, sentence: str) -> str:
        switched = " ".join(self.switch_words(sentence.split()))
        if len(self.report.examples) < 3 and switched != sentence:
            self.report.examples.append((sentence, switched))
        return switched


def code_switch_records(
    task: str,
    records: Sequence[dict[str, Any]],
    dictionaries: Mapping[str, Mapping[str, Sequence[str]]],
    *,
    ratio: float = 0.3,
    seed: int = 0,
) -> tuple[list[dict[str, Any]], CodeSwitchReport]:
    """Code-switched copies of task records (pairs: both sides; tagging: the words, tags kept).

    Returns the copies (same order, labels unchanged) and the report. One seed gives one result.
    """
    from crossling.tasks.labels import is_tagging

    switcher = CodeSwitcher(dictionaries, ratio=ratio, seed=seed)
    out = []
    for record in records:
        if is_tagging(task):
            tokens = switcher.switch_words(record["tokens"])
            out.append({**record, "tokens": tokens})
        else:
            out.append(
                {
                    **record,
                    "text_a": switcher.switch(record["text_a"]),
                    "text_b": switcher.switch(record["text_b"]),
                }
            )
    return out, switcher.report


def load_dictionaries(specs: Mapping[str, str | os.PathLike[str]]) -> dict[str, Dictionary]:
    """{language: TSV path} -> {language: Dictionary}."""
    return {lang: read_dictionary(path) for lang, path in specs.items()}


def merge(dictionaries: Iterable[Mapping[str, Sequence[str]]]) -> Dictionary:
    """One dictionary from several of one language pair (translations of a word kept in order)."""
    out: dict[str, list[str]] = defaultdict(list)
    for d in dictionaries:
        for s, targets in d.items():
            for t in targets:
                if t not in out[s]:
                    out[s].append(t)
    return dict(out)
