"""Tiny, random, offline models and tokenizers for tests and examples.

Everything here is built from scratch in seconds on a CPU: a WordPiece BERT (mBERT-like) and a
SentencePiece-unigram XLM-R (XLM-R-like), both hidden 32 / 2 layers, saved as ordinary Hugging Face
directories so that code under test loads them exactly as it would load `xlm-roberta-base`.
"""

from __future__ import annotations

import random
from pathlib import Path

# Two small "languages" with disjoint-ish vocabularies plus shared names and numbers, so tests can
# exercise lexical overlap (shared tokens) and its absence.
_WORDS = {
    "en": (
        "the a cat dog house river tree small big red green walks runs sees eats water bread "
        "mother father child village road morning night sun rain book reads writes sings"
    ).split(),
    "xx": (
        "ka mu nyumba mto mti dogo kubwa ekundu kijani atembea akimbia aona ala maji mkate "
        "mama baba mtoto kijiji njia asubuhi usiku jua mvua kitabu asoma aandika aimba"
    ).split(),
}
_SHARED = "Amina Juma Nairobi Lilongwe 2024 7 12".split()


def tiny_corpus(n: int = 200, lang: str = "en", seed: int = 0) -> list[str]:
    """`n` deterministic sentences of 4-12 words in toy language `lang` ("en" or "xx")."""
    if lang not in _WORDS:
        raise ValueError(f"tiny_corpus: unknown toy language {lang!r}; choose from {sorted(_WORDS)}")
    rng = random.Random(f"{lang}-{seed}")
    words = _WORDS[lang]
    out = []
    for _ in range(n):
        sent = [rng.choice(words) for _ in range(rng.randint(4, 12))]
        if rng.random() < 0.3:
            sent.insert(rng.randrange(len(sent)), rng.choice(_SHARED))
        out.append(" ".join(sent).capitalize() + ".")
    return out


def _model_kwargs(vocab_size: int, hidden: int, layers: int, heads: int, **extra) -> dict:
    return dict(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        max_position_embeddings=128,
        **extra,
    )


def tiny_bert(
    out_dir: str | Path, *, corpus: list[str] | None = None, hidden: int = 32, layers: int = 2, seed: int = 0
) -> Path:
    """Save a random `BertForMaskedLM` with a WordPiece tokenizer trained on `corpus` to `out_dir`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    out_dir = Path(out_dir)
    corpus = corpus if corpus is not None else tiny_corpus(300, "en") + tiny_corpus(300, "xx")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    hf_tok = BertTokenizerFast(tokenizer_object=tok, do_lower_case=False)
    hf_tok.model_max_length = 128

    torch.manual_seed(seed)
    config = BertConfig(**_model_kwargs(tok.get_vocab_size(), hidden, layers, 2, pad_token_id=0))
    model = BertForMaskedLM(config)
    model.save_pretrained(out_dir)
    hf_tok.save_pretrained(out_dir)
    return out_dir


def tiny_xlmr(
    out_dir: str | Path, *, corpus: list[str] | None = None, hidden: int = 32, layers: int = 2, seed: int = 0
) -> Path:
    """Save a random `XLMRobertaForMaskedLM` with a unigram (▁-marked) tokenizer to `out_dir`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM, XLMRobertaTokenizerFast

    out_dir = Path(out_dir)
    corpus = corpus if corpus is not None else tiny_corpus(300, "en") + tiny_corpus(300, "xx")
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.train_from_iterator(
        corpus, trainers.UnigramTrainer(vocab_size=300, special_tokens=specials, unk_token="<unk>")
    )
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    hf_tok = XLMRobertaTokenizerFast(tokenizer_object=tok)
    hf_tok.model_max_length = 128

    torch.manual_seed(seed)
    config = XLMRobertaConfig(
        **_model_kwargs(
            tok.get_vocab_size(), hidden, layers, 2, pad_token_id=1, bos_token_id=0, eos_token_id=2
        ),
    )
    config.max_position_embeddings = 130  # RoBERTa offsets positions by padding_idx + 1
    model = XLMRobertaForMaskedLM(config)
    model.save_pretrained(out_dir)
    hf_tok.save_pretrained(out_dir)
    return out_dir
