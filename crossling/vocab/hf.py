"""SentencePiece unigram model -> XLM-R style Hugging Face tokenizer directory.

The conversion mirrors `transformers`' own `XLMRobertaConverter` (the one that produced
xlm-roberta-base's tokenizer.json), without its protobuf dependency:

- ids follow XLM-R/fairseq: <s>=0 <pad>=1 </s>=2 <unk>=3, SentencePiece piece i>=3 gets id i+1,
  <mask> is last; so a model of `vocab_size` pieces gives a tokenizer of vocab_size + 2 entries;
- normaliser: SentencePiece's precompiled character map (nmt_nfkc by default), right strip, runs
  of spaces collapsed; pre-tokeniser and decoder: Metaspace "▁", prefix space always;
- post-processor: <s> A </s> and <s> A </s> </s> B </s>.

`AutoTokenizer.from_pretrained(dir)` then loads an `XLMRobertaTokenizerFast` whose pieces equal
SentencePiece's on the same text (tested).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from crossling.errors import ArtifactError, ConfigError
from crossling.vocab.search import SPM_MODEL_NAME, train_fixed_size
from crossling.vocab.trainer import DEFAULT_TRAIN_THREADS, load_model_proto, normalizer_spec

SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")  # ids 0..3, then the pieces, then <mask>
MASK = "<mask>"


def build_tokenizer(model: bytes | str | os.PathLike[str], *, model_max_length: int = 512):
    """An in-memory `XLMRobertaTokenizerFast` for a SentencePiece unigram model (bytes or path)."""
    import sentencepiece as spm
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import XLMRobertaTokenizerFast

    proto = load_model_proto(model)
    sp = spm.SentencePieceProcessor(model_proto=proto)
    if (sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()) != (0, 1, 2, -1):
        raise ArtifactError(
            "expected a SentencePiece model with <unk>=0 <s>=1 </s>=2 and no <pad> (crossling's layout), "
            f"got unk={sp.unk_id()} bos={sp.bos_id()} eos={sp.eos_id()} pad={sp.pad_id()}"
        )
    extra = [
        i for i in range(3, sp.get_piece_size()) if sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i)
    ]
    if extra:
        raise ArtifactError(f"unsupported special pieces in the SentencePiece model: ids {extra[:5]}")
    spec = normalizer_spec(proto)
    if not (spec["add_dummy_prefix"] and spec["remove_extra_whitespaces"] and spec["escape_whitespaces"]):
        raise ArtifactError("the SentencePiece model must use the default whitespace handling")

    vocab = [(token, 0.0) for token in SPECIALS]
    vocab += [(sp.id_to_piece(i), sp.get_score(i)) for i in range(3, sp.get_piece_size())]
    vocab.append((MASK, 0.0))
    tok = Tokenizer(Unigram(vocab, unk_id=SPECIALS.index("<unk>"), byte_fallback=False))
    steps = [normalizers.Strip(left=False, right=True), normalizers.Replace(Regex(" {2,}"), "▁")]
    if spec["precompiled_charsmap"]:
        steps.insert(0, normalizers.Precompiled(spec["precompiled_charsmap"]))
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    return XLMRobertaTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token=MASK,
        model_max_length=model_max_length,
    )


def write_tokenizer_files(
    model: bytes | str | os.PathLike[str], directory: str | os.PathLike[str], *, model_max_length: int = 512
) -> None:
    """Write the Hugging Face tokenizer files and the raw `sentencepiece.model` into `directory`."""
    proto = load_model_proto(model)
    directory = Path(directory)
    build_tokenizer(proto, model_max_length=model_max_length).save_pretrained(str(directory))
    (directory / SPM_MODEL_NAME).write_bytes(proto)


def check_out_dir(out_dir: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """`out_dir` as a Path if a result may be written there (ConfigError otherwise).

    An existing non-empty folder is only replaced when `overwrite`; callers check this before a
    long search, not after it.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out} exists and is not empty; choose another folder or overwrite it")
    return out


def save_tokenizer(
    model: bytes | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    model_max_length: int = 512,
) -> Path:
    """Write the tokenizer directory for a SentencePiece model atomically; returns `out_dir`.

    The folder is built beside `out_dir` and renamed into place (`crossling.artifacts.atomic_directory`).
    """
    from crossling.artifacts import atomic_directory

    out = check_out_dir(out_dir, overwrite=overwrite)
    with atomic_directory(out) as tmp:  # which gives the folder the umask's permissions
        write_tokenizer_files(model, tmp, model_max_length=model_max_length)
    return out


def save_vocabulary(
    result: Any,
    out_dir: str | os.PathLike[str],
    *,
    corpus: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a search result as a tokenizer directory with its trace and plot, atomically.

    `result` is a `VocabSearchResult`; the directory gets the Hugging Face tokenizer files, the raw
    `sentencepiece.model`, `vocab_search.json` (every size, ALP and delta) and `alp.svg` (searches only).
    """
    from crossling.artifacts import atomic_directory, library_versions
    from crossling.vocab.plot import alp_svg

    out = check_out_dir(out_dir, overwrite=overwrite)
    report = result.to_dict()
    report["model_path"] = SPM_MODEL_NAME
    report["corpus"] = corpus
    report["tokenizer_size"] = result.chosen_size + 2
    report["versions"] = library_versions()
    with atomic_directory(out) as tmp:
        write_tokenizer_files(result.model_proto, tmp)
        (tmp / "vocab_search.json").write_text(
            json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        if result.stop_reason != "fixed":
            sizes = [s.size for s in result.trace]
            svg = alp_svg(sizes, [s.alp for s in result.trace], chosen=result.chosen_size)
            (tmp / "alp.svg").write_text(svg, encoding="utf-8")
    return out


def train_tokenizer(
    corpus: str | os.PathLike[str] | Iterable[str],
    vocab_size: int,
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    character_coverage: float = 1.0,
    train_threads: int = DEFAULT_TRAIN_THREADS,
    spm_options: Mapping[str, Any] | None = None,
    corpus_format: str = "text",
    overwrite: bool = False,
    model_max_length: int = 512,
) -> Path:
    """Train a SentencePiece unigram model of `vocab_size` pieces on `corpus` and save it as an
    XLM-R style Hugging Face tokenizer directory (plus the raw `sentencepiece.model`).

    Loads with `transformers.AutoTokenizer.from_pretrained(out_dir)`; has vocab_size + 2 entries
    (<pad> and <mask> are added to SentencePiece's <unk> <s> </s>). Returns `out_dir`.
    """
    out = check_out_dir(out_dir, overwrite=overwrite)
    result = train_fixed_size(
        corpus,
        vocab_size,
        seed=seed,
        character_coverage=character_coverage,
        train_threads=train_threads,
        spm_options=spm_options,
        corpus_format=corpus_format,
    )
    return save_tokenizer(result.model_proto, out, overwrite=overwrite, model_max_length=model_max_length)
