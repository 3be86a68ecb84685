"""SentencePiece unigram training with crossling's errors instead of SentencePiece tracebacks.

Everything that decides which model SentencePiece builds is an argument here, so the naive and
the fast vocabulary search train bit-identical models: the corpus file, the size, the character
coverage, the random seed and, less obviously, the trainer's thread count (its E-step sums
per-thread partial counts, so 2 and 16 threads give slightly different pieces and scores).
"""

from __future__ import annotations

import atexit
import io
import os
import random
import re
import tempfile
import threading
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

from crossling.errors import ConfigError, CrosslingError, DataFormatError

# SentencePiece's own default; the UniBridge reference trains with it. It is part of the result
# (see the module docstring), so it is a fixed number rather than "all cores of this machine".
DEFAULT_TRAIN_THREADS = 16

# Trainer options a caller may add. Everything else is either set by crossling (model type, special
# ids, whitespace handling: the Hugging Face conversion relies on them) or would change what
# "vocabulary size" means (hard_vocab_limit, use_all_vocab).
ALLOWED_SPM_OPTIONS = frozenset(
    {
        "input_sentence_size",
        "shuffle_input_sentence",
        "max_sentence_length",
        "max_sentencepiece_length",
        "seed_sentencepiece_size",
        "shrinking_factor",
        "num_sub_iterations",
        "split_by_unicode_script",
        "split_by_number",
        "split_digits",
        "normalization_rule_name",
        "required_chars",
        "train_extremely_large_corpus",
    }
)

_TOO_HIGH = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")
_TOO_LOW = re.compile(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)")


class CorpusTooSmallError(DataFormatError):
    """SentencePiece cannot build `requested` pieces from this corpus; it can build `max_size`."""

    def __init__(self, path: str | PathLike[str], requested: int, max_size: int, hint: str = ""):
        self.requested = requested
        self.max_size = max_size
        message = (
            f"corpus too small for a SentencePiece vocabulary of {requested}: it supports at most "
            f"{max_size} pieces"
        )
        super().__init__(path, None, message + (f"; {hint}" if hint else ""))


class VocabSizeTooHigh(Exception):
    """Internal signal: `requested` is above the largest size (`max_size`) the corpus supports."""

    def __init__(self, requested: int, max_size: int):
        super().__init__(requested, max_size)
        self.requested = requested
        self.max_size = max_size


def check_spm_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validated copy of extra SentencePiece trainer options (ConfigError on an unsupported key)."""
    options = dict(options or {})
    unknown = sorted(set(options) - ALLOWED_SPM_OPTIONS)
    if unknown:
        raise ConfigError(
            f"unsupported SentencePiece option(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(sorted(ALLOWED_SPM_OPTIONS))} (crossling sets the others itself)"
        )
    return options


def trainer_args(
    vocab_size: int,
    *,
    character_coverage: float,
    train_threads: int,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The full SentencePiece trainer arguments crossling uses (recorded in search reports)."""
    return {
        "model_type": "unigram",
        "vocab_size": int(vocab_size),
        "character_coverage": float(character_coverage),
        "num_threads": int(train_threads),
        # XLM-R's layout before the fairseq offset: <unk>=0, <s>=1, </s>=2 (the SentencePiece
        # defaults, spelled out because the Hugging Face conversion depends on them).
        "unk_id": 0,
        "bos_id": 1,
        "eos_id": 2,
        "pad_id": -1,
        **check_spm_options(options),
    }


def train_unigram(
    corpus_file: str | PathLike[str],
    vocab_size: int,
    *,
    character_coverage: float = 1.0,
    train_threads: int = DEFAULT_TRAIN_THREADS,
    seed: int = 0,
    options: Mapping[str, Any] | None = None,
    source: str | PathLike[str] | None = None,
) -> bytes:
    """Train a SentencePiece unigram model on `corpus_file` (one sentence per line); its bytes.

    Raises VocabSizeTooHigh (internal; carries the largest feasible size) when the corpus cannot
    support `vocab_size` pieces, ConfigError when the size is below the corpus' character set
    or an option is rejected. `source` names the user's file in messages (the corpus file itself
    is usually a prepared copy). Thread-safe: SentencePiece releases the GIL while training and its
    random generator is per thread, so the seed is set in the calling thread right before training.
    """
    import sentencepiece as spm

    args = trainer_args(
        vocab_size, character_coverage=character_coverage, train_threads=train_threads, options=options
    )
    path = str(corpus_file)
    if "," in path:  # SentencePiece splits `input` on commas
        raise ConfigError(f"SentencePiece cannot read a corpus file whose path contains a comma: {path}")
    # SentencePiece's own sentence sampling ignores the seed across processes (a new process draws
    # another sample), so crossling draws it, seeded, and SentencePiece trains on all it is given
    sample_size = int(args.pop("input_sentence_size", 0) or 0)
    shuffle = args.pop("shuffle_input_sentence", True)
    shuffle = shuffle.lower() not in ("false", "0") if isinstance(shuffle, str) else bool(shuffle)
    train_path = _sampled_lines(Path(path), sample_size, seed, shuffle)
    buffer = io.BytesIO()
    spm.set_random_generator_seed(int(seed))
    try:
        spm.SentencePieceTrainer.train(input=str(train_path), model_writer=buffer, minloglevel=2, **args)
    except RuntimeError as err:
        raise _translate(str(err), vocab_size, source or corpus_file, character_coverage) from None
    return strip_input_paths(buffer.getvalue())


_SAMPLES: dict[tuple, Path] = {}  # (file, its size and mtime, sample size, seed, shuffle) -> sample file
_SAMPLES_LOCK = threading.Lock()


def _sampled_lines(path: Path, size: int, seed: int, shuffle: bool = True) -> Path:
    """`path`, or a file of `size` of its lines: drawn uniformly with `seed` (kept in file order), or
    the first `size` without `shuffle`, as SentencePiece's own options mean. Drawn once per process
    and file (a search trains many sizes on the same sample; the threads of a search share it)."""
    if size <= 0:
        return path
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, size, seed, shuffle)
    with _SAMPLES_LOCK:
        if key not in _SAMPLES:
            _SAMPLES[key] = _draw_sample(path, size, seed, shuffle)
        return _SAMPLES[key]


def _draw_sample(path: Path, size: int, seed: int, shuffle: bool) -> Path:
    rng = random.Random(seed)
    kept: list[tuple[int, str]] = []
    count = 0
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh):  # reservoir sampling: one pass, `size` lines in memory
            count = n + 1
            if n < size:
                kept.append((n, line))
            elif not shuffle:
                break
            elif (j := rng.randrange(n + 1)) < size:
                kept[j] = (n, line)
    if count <= size:
        return path
    fd, tmp = tempfile.mkstemp(prefix="crossling-spm-sample-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.writelines(line if line.endswith("\n") else line + "\n" for _, line in sorted(kept))
    atexit.register(lambda: Path(tmp).unlink(missing_ok=True))
    return Path(tmp)


def _translate(message: str, vocab_size: int, source, character_coverage: float) -> Exception:
    if m := _TOO_HIGH.search(message):
        return VocabSizeTooHigh(int(m.group(1)), int(m.group(2)))
    if m := _TOO_LOW.search(message):
        return ConfigError(
            f"vocabulary size {vocab_size} is smaller than the {int(m.group(2))} pieces SentencePiece must "
            f"keep for this corpus (its characters at character_coverage={character_coverage}, plus "
            f"<unk> <s> </s>); use a larger size or a lower character coverage"
        )
    if "sentences_.empty()" in message:
        return DataFormatError(source, None, "SentencePiece found no usable sentence in the corpus")
    # Anything else: keep SentencePiece's reason, drop its source location.
    reason = re.sub(r"^[A-Z_]+: \S+\(\d+\) \[.*?\] ?", "", message).strip() or message
    return CrosslingError(f"SentencePiece training failed (vocab_size={vocab_size}): {reason}")


def max_size_hint(max_size: int, step: int | None = None) -> str:
    """Advice for CorpusTooSmallError: a start or fixed size this corpus supports."""
    if step:
        return f"start the search at or below {max_size} (e.g. --start {max_size}) or use a larger corpus"
    return f"use a vocabulary size of at most {max_size} or a larger corpus"


# --- reading a serialized ModelProto without protobuf -------------------------------------------
# The Hugging Face conversion needs NormalizerSpec.precompiled_charsmap. transformers reads it with
# protobuf, which crossling does not otherwise need; the wire format of these few fields is simple.


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _spans(buf: bytes):
    """(field number, wire type, value, start, end) for each field of a protobuf message.

    LEN fields give their payload as bytes; start:end is the whole field, key included.
    """
    pos = 0
    while pos < len(buf):
        start = pos
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value, start, pos


def _fields(buf: bytes):
    for number, _, value, _, _ in _spans(buf):
        yield number, value


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def strip_input_paths(model_proto: bytes) -> bytes:
    """The model without TrainerSpec.input (field 1): SentencePiece records the training file's
    path in the model, which would make identical models differ by the name of a temporary folder
    (and leak local paths into published tokenizers). Nothing reads it back when encoding."""
    out = bytearray()
    for number, wire, value, start, end in _spans(model_proto):
        if number == 2 and wire == 2:  # ModelProto.trainer_spec
            spec = b"".join(value[s:e] for n, _, _, s, e in _spans(value) if n != 1)
            out += _encode_varint((2 << 3) | 2) + _encode_varint(len(spec)) + spec
        else:
            out += model_proto[start:end]
    return bytes(out)


def normalizer_spec(model_proto: bytes) -> dict[str, Any]:
    """NormalizerSpec of a SentencePiece model: name, precompiled_charsmap and whitespace flags."""
    spec: dict[str, Any] = {
        "name": "",
        "precompiled_charsmap": b"",
        "add_dummy_prefix": True,
        "remove_extra_whitespaces": True,
        "escape_whitespaces": True,
    }
    names = {1: "name", 2: "precompiled_charsmap", 3: "add_dummy_prefix", 4: "remove_extra_whitespaces"}
    names[5] = "escape_whitespaces"
    for number, value in _fields(model_proto):
        if number != 3:  # ModelProto.normalizer_spec
            continue
        for sub, sub_value in _fields(value):
            key = names.get(sub)
            if key == "name":
                spec[key] = sub_value.decode("utf-8")
            elif key == "precompiled_charsmap":
                spec[key] = bytes(sub_value)
            elif key is not None:
                spec[key] = bool(sub_value)
    return spec


def load_model_proto(model: bytes | str | PathLike[str]) -> bytes:
    """Bytes of a SentencePiece model given as bytes or a path (ArtifactError-free: plain read)."""
    if isinstance(model, bytes | bytearray):
        return bytes(model)
    path = Path(model)
    if not path.is_file():
        raise DataFormatError(path, None, "no such SentencePiece model file")
    return path.read_bytes()
