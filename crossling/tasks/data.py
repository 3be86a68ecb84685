"""Task data: reading labelled files for a task, and turning records into model features.

Tagging (ner, pos) labels the first subword of every word only; the other subwords get -100 and
are ignored by the loss and by prediction (MAD-X / XTREME practice). Sentence pairs (nli,
paraphrase) are encoded as one sequence pair. Sequences longer than the maximum length are
truncated, never refused, and counted: `Encoded.report()` says how many, and for tagging how many
words lost their label that way (prediction fills those words with a fallback tag and counts them).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from crossling.errors import ConfigError, CrosslingError, DataFormatError
from crossling.tasks.labels import TASKS, check_iob2, is_tagging

logger = logging.getLogger(__name__)

IGNORE = -100
_TAGGING_FORMATS = ("xtreme", "iob", "conllu")
_PAIR_FORMATS = ("nli", "pawsx", "americasnli")
# the formats whose labels are a pair task's (a PAWS-X file trained as NLI would give a 0/1 "NLI" model)
_TASK_FORMATS = {"nli": ("nli", "americasnli"), "paraphrase": ("pawsx",)}
_PAIR_KEYS = {"nli": ("premise", "hypothesis"), "pawsx": ("sentence1", "sentence2")}
_PAIR_KEYS["americasnli"] = _PAIR_KEYS["nli"]

Records = list[dict[str, Any]]


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return task


# ---------------------------------------------------------------------- reading
def _pair_format(path: Path) -> str:
    from crossling.data import guess_format

    try:
        guessed = guess_format(path)
    except DataFormatError:
        guessed = ""
    # A label typo in the first lines defeats format guessing; the task says what to expect, and
    # the reader then names the line with the bad label.
    return guessed if guessed in _PAIR_FORMATS else ""


def read_task_data(
    task: str,
    path: str | os.PathLike[str],
    *,
    format: str = "auto",
    to_iob2: bool = False,
    **options: Any,
) -> Records:
    """Records of a labelled file for `task`, normalised and checked.

    Tagging -> ``{"tokens", "tags"}`` (NER tags must be IOB2; `to_iob2` converts IOB1 first);
    pairs -> ``{"text_a", "text_b", "label"}``. `format` is a `crossling.data` format name or
    "auto"; `options` go to that reader (e.g. ``encoding="auto"``).
    """
    from crossling.data import read

    check_task(task)
    path = Path(path)
    if format == "auto":
        if is_tagging(task):
            from crossling.data import guess_format

            format = guess_format(path)
        else:
            format = _pair_format(path) or ("nli" if task == "nli" else "pawsx")
    allowed = _TAGGING_FORMATS if is_tagging(task) else _TASK_FORMATS[task]
    if format not in allowed:
        raise DataFormatError(
            path,
            None,
            f"this looks like a {format!r} file, which has no {task} labels (expected one of: "
            f"{', '.join(allowed)})"
            + (
                ". The format is guessed from the first lines: check their tags for a typo (e.g. B_PER "
                "or b-per for B-PER), or pass format= in Python"
                if is_tagging(task)
                else ""
            ),
        )
    if to_iob2 and format in ("xtreme", "iob"):
        options["to_iob2"] = True
    records = list(read(path, format, **options))
    if is_tagging(task):
        out = [{"tokens": list(r["tokens"]), "tags": list(r["tags"])} for r in records]
        if task == "ner":
            if to_iob2 and format == "conllu":
                from crossling.data import iob1_to_iob2

                for r in out:
                    r["tags"] = iob1_to_iob2(r["tags"])
            check_iob2(out, source=str(path))
        return out
    key_a, key_b = _PAIR_KEYS[format]
    return [{"text_a": r[key_a], "text_b": r[key_b], "label": r["label"]} for r in records]


def read_unlabelled(path: str | os.PathLike[str], *, limit: int | None = None) -> list[str]:
    """Lines of a plain-text file of unlabelled sentences (for the adversarial discriminator)."""
    from crossling.data import read_text

    lines: list[str] = []
    for record in read_text(path):
        lines.append(record["text"])
        if limit is not None and len(lines) >= limit:
            break
    return lines


def record_sentences(task: str, records: Iterable[dict[str, Any]]) -> list[Any]:
    """The plain sentences of labelled records: word lists for tagging, strings for pairs (both sides)."""
    if is_tagging(task):
        return [list(r["tokens"]) for r in records]
    out: list[str] = []
    for r in records:
        out.extend((r["text_a"], r["text_b"]))
    return out


# ---------------------------------------------------------------------- tokenisation
def prepare_tokenizer(tokenizer: Any) -> Any:
    """A fast tokenizer usable on pre-split words (byte-level BPE needs add_prefix_space)."""
    if not getattr(tokenizer, "is_fast", False):
        raise CrosslingError(
            f"{type(tokenizer).__name__} is a slow tokenizer; crossling needs a fast (Rust) tokenizer "
            "for word-to-subword alignment"
        )
    if getattr(tokenizer, "add_prefix_space", None) is False and type(tokenizer).__name__.startswith(
        ("Roberta", "GPT2", "Bart", "Longformer")
    ):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer.name_or_path, add_prefix_space=True)
    return tokenizer


@dataclass
class Encoded:
    """Model features of a list of records plus what truncation did to them."""

    features: list[dict[str, list[int]]]
    word_ids: list[list[int | None]] | None = None  # tagging: subword -> word index, per sentence
    n_words: list[int] | None = None
    sequences: int = 0
    truncated: int = 0  # sequences cut at max_length
    words_cut: int = 0  # tagging: words that lost their only labelled subword to truncation
    words_without_subword: int = 0  # tagging: words the tokenizer turned into nothing
    notes: dict[str, Any] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sequences": self.sequences, "truncated": self.truncated}
        if self.word_ids is not None:
            out["words"] = int(sum(self.n_words or []))
            out["words_cut_by_truncation"] = self.words_cut
            out["words_without_subword"] = self.words_without_subword
        return out


def encode_tagging(
    tokenizer: Any,
    records: Sequence[dict[str, Any]],
    label2id: dict[str, int] | None,
    max_length: int,
    *,
    label_all_subwords: bool = False,
) -> Encoded:
    """First-subword labelling: each word's first subword carries its tag id, everything else -100.

    `label2id=None` encodes for prediction (no "labels" feature). With `label_all_subwords` the
    other subwords of a word carry its tag too (B-X becomes I-X there), the HF `label_all_tokens`
    variant; prediction still reads the first subword.
    """
    tokenizer = prepare_tokenizer(tokenizer)
    words = [list(r["tokens"]) for r in records]
    enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
    out = Encoded(features=[], word_ids=[], n_words=[len(w) for w in words], sequences=len(words))
    for i, record in enumerate(records):
        word_ids = enc.word_ids(i)
        seen = [w for w in word_ids if w is not None]
        last = max(seen) if seen else -1
        present = set(seen)
        n = len(words[i])
        cut = n - 1 - last  # words after the last one that kept a subword
        if cut > 0 and len(enc["input_ids"][i]) >= max_length:  # truncation took them
            out.truncated += 1
            out.words_cut += cut
            cut = 0
        # else they are words the tokenizer turns into nothing (a lone no-break space, a BOM)
        out.words_without_subword += sum(1 for w in range(last + 1) if w not in present) + max(cut, 0)
        feature = {k: list(v[i]) for k, v in enc.items()}
        if label2id is not None:
            tags = record["tags"]
            labels, previous = [], None
            for w in word_ids:
                if w is None:
                    labels.append(IGNORE)
                elif w != previous:
                    labels.append(label2id[tags[w]])
                elif label_all_subwords:
                    tag = tags[w]
                    labels.append(
                        label2id.get("I-" + tag[2:], label2id[tag]) if tag.startswith("B-") else label2id[tag]
                    )
                else:
                    labels.append(IGNORE)
                previous = w
            feature["labels"] = labels
        out.features.append(feature)
        out.word_ids.append(word_ids)
    return out


def encode_pairs(
    tokenizer: Any,
    records: Sequence[dict[str, Any]],
    label2id: dict[str, int] | None,
    max_length: int,
) -> Encoded:
    """Sentence pairs as one sequence (``[CLS] a [SEP] b [SEP]``), truncated longest-first."""
    tokenizer = prepare_tokenizer(tokenizer)
    a = [r["text_a"] for r in records]
    b = [r["text_b"] for r in records]
    enc = tokenizer(a, b, truncation=True, max_length=max_length)
    # Lengths before truncation, only to count what truncation did (no special cases per tokenizer).
    full = tokenizer(a, b, truncation=False, verbose=False)["input_ids"]
    out = Encoded(features=[], sequences=len(records))
    out.truncated = sum(1 for ids in full if len(ids) > max_length)
    for i, record in enumerate(records):
        feature = {k: list(v[i]) for k, v in enc.items()}
        if label2id is not None:
            feature["labels"] = label2id[record["label"]]
        out.features.append(feature)
    return out


def encode_records(
    task: str,
    tokenizer: Any,
    records: Sequence[dict[str, Any]],
    label2id: dict[str, int] | None,
    max_length: int,
    *,
    label_all_subwords: bool = False,
) -> Encoded:
    if is_tagging(task):
        return encode_tagging(tokenizer, records, label2id, max_length, label_all_subwords=label_all_subwords)
    return encode_pairs(tokenizer, records, label2id, max_length)


def encode_sentences(tokenizer: Any, sentences: Sequence[Any], max_length: int) -> Encoded:
    """Unlabelled sentences (strings, or word lists as tagging data has them) for the discriminator."""
    tokenizer = prepare_tokenizer(tokenizer)
    out = Encoded(features=[], sequences=len(sentences))
    if not sentences:
        return out
    split = not isinstance(sentences[0], str)
    enc = tokenizer(list(sentences), is_split_into_words=split, truncation=True, max_length=max_length)
    full = tokenizer(list(sentences), is_split_into_words=split, truncation=False, verbose=False)
    out.truncated = sum(1 for ids in full["input_ids"] if len(ids) > max_length)
    out.features = [
        {k: list(v[i]) for k, v in enc.items() if k != "token_type_ids"} for i in range(len(sentences))
    ]
    return out


def collate(features: Sequence[dict[str, Any]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Pad a list of features to a batch: ids with the pad id, masks with 0, token labels with -100."""
    width = max(len(f["input_ids"]) for f in features)
    batch: dict[str, torch.Tensor] = {}
    for key in features[0]:
        values = [f[key] for f in features]
        if key == "labels" and not isinstance(values[0], list):
            batch[key] = torch.tensor(values, dtype=torch.long)
            continue
        pad = {"input_ids": pad_token_id, "labels": IGNORE}.get(key, 0)
        batch[key] = torch.tensor([v + [pad] * (width - len(v)) for v in values], dtype=torch.long)
    return batch
