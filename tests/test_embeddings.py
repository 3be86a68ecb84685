"""Embedding initialisation (issue #3, DESIGN point 2): tiny offline models, fastText dim 16."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from crossling.embeddings import (
    EmbeddingInitError,
    FastTextConfig,
    TokenVectors,
    Vocab,
    detect_marker_style,
    initialize,
    lexical_overlap,
    load_initialization,
    mutual_nearest_neighbours,
    nearest_neighbours,
    normalize_token,
    procrustes,
    save_initialization,
    sparsemax,
    sparsemax_mixture,
    special_token_map,
    train_token_vectors,
    unibridge_init,
)
from crossling.errors import ArtifactError, ConfigError
from crossling.testing import tiny_corpus

FT = FastTextConfig(dim=16, epochs=2)
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
# Toy language "xx" written in another script, without digits or punctuation: nothing in it can match
# the Latin-script base vocabularies, so lexical overlap is exactly zero.
_GREEK = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    "αβγδεζηθικλμνξοπρστυφχψωϊϋΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩΪΫабвгдежзий",
    ".,",
)


def _unigram_tokenizer(corpus: list[str], vocab_size: int = 200):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import XLMRobertaTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, unk_token="<unk>")
    tok.train_from_iterator(corpus, trainer)
    return XLMRobertaTokenizerFast(tokenizer_object=tok)


def _wordpiece_tokenizer(corpus: list[str], vocab_size: int = 200):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
    return BertTokenizerFast(tokenizer_object=tok, do_lower_case=False)


@pytest.fixture(scope="module")
def xx_lines() -> list[str]:
    return tiny_corpus(300, "xx")


@pytest.fixture(scope="module")
def target_tok(xx_lines):
    return _unigram_tokenizer(xx_lines)


@pytest.fixture(scope="module")
def target_tok_dir(target_tok, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("target-tok")
    target_tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def greek_lines(xx_lines) -> list[str]:
    return [line.translate(_GREEK) for line in xx_lines]


@pytest.fixture(scope="module")
def greek_tok(greek_lines):
    return _wordpiece_tokenizer(greek_lines)


def _base(path: Path):
    """(embeddings, tokenizer) of a tiny saved model, loaded the way `initialize` loads it."""
    from crossling.embeddings import load_base_embeddings, load_tokenizer

    return load_base_embeddings(path), load_tokenizer(path)


# ---------------------------------------------------------------------- markers and vocabularies
def test_markers_normalise_across_tokenizer_families():
    # word-initial piece
    assert normalize_token("▁house", "sentencepiece") == "▁house"
    assert normalize_token("house", "wordpiece") == "▁house"
    assert normalize_token("Ġhouse", "bytelevel") == "▁house"
    # continuation piece
    assert normalize_token("ing", "sentencepiece") == "ing"
    assert normalize_token("##ing", "wordpiece") == "ing"
    assert normalize_token("ing", "bytelevel") == "ing"
    # byte-level pieces spell non-ASCII through the byte alphabet; half a character matches nothing
    assert normalize_token("ĠcafÃ©", "bytelevel") == "▁café"
    assert normalize_token("Ã", "bytelevel") is None
    assert normalize_token("##", "wordpiece") == "▁##"  # a literal "##" token is a word, not a prefix


def test_marker_style_detection(tiny_bert_dir, tiny_xlmr_dir):
    _, bert_tok = _base(tiny_bert_dir)
    _, xlmr_tok = _base(tiny_xlmr_dir)
    assert Vocab.from_tokenizer(bert_tok).style == "wordpiece"
    assert Vocab.from_tokenizer(xlmr_tok).style == "sentencepiece"
    assert detect_marker_style(["Ġthe", "Ġcat", "s", "Ġsat", "<|endoftext|>"]) == "bytelevel"
    assert detect_marker_style(["a", "b"]) == "none"


def test_lexical_overlap_across_families_and_case():
    wordpiece = Vocab.from_tokens(
        ["[PAD]", "[UNK]", "house", "##ing", "walk", "The"], specials={"pad": "[PAD]"}
    )
    spm = Vocab.from_tokens(
        ["<pad>", "▁house", "ing", "▁walk", "walk", "▁the", "▁xyz"], specials={"pad": "<pad>"}
    )
    bpe = Vocab.from_tokens(["Ġhouse", "ing", "Ġwalk", "walk", "Ġzzz"], style="bytelevel")
    assert wordpiece.style == "wordpiece" and spm.style == "sentencepiece"
    # target spm -> source wordpiece: "▁walk" is "walk" (word-initial), "walk" (continuation) is not
    assert lexical_overlap(wordpiece, spm, ignore_case=False) == {1: 2, 2: 3, 3: 4}
    assert lexical_overlap(wordpiece, spm)[5] == 5  # "▁the" ~ "The" only when case is ignored
    assert lexical_overlap(spm, bpe) == {0: 1, 1: 2, 2: 3, 3: 4}
    assert 0 not in lexical_overlap(wordpiece, spm)  # special tokens never match by string


def test_special_tokens_map_by_role(tiny_bert_dir, target_tok):
    _, bert_tok = _base(tiny_bert_dir)
    source, target = Vocab.from_tokenizer(bert_tok), Vocab.from_tokenizer(target_tok)
    mapping = {target.tokens[t]: source.tokens[s] for t, s in special_token_map(source, target).items()}
    assert mapping == {
        "<s>": "[CLS]",
        "</s>": "[SEP]",
        "<pad>": "[PAD]",
        "<unk>": "[UNK]",
        "<mask>": "[MASK]",
    }


# ---------------------------------------------------------------------- building blocks
def test_sparsemax_is_sparse_sums_to_one_and_matches_reference():
    from sparsemax import Sparsemax

    torch.manual_seed(0)
    z = torch.randn(50, 40) * 2
    p = sparsemax(z)
    assert torch.allclose(p.sum(-1), torch.ones(50), atol=1e-5)
    assert (p >= 0).all()
    assert (p == 0).float().mean() > 0.5  # most weights exactly zero
    assert torch.allclose(p, Sparsemax(dim=-1)(z), atol=1e-5)
    assert torch.equal(sparsemax(torch.tensor([[3.0, 0.0, -1.0]])), torch.tensor([[1.0, 0.0, 0.0]]))
    # wide rows with supports below, between and above the top-k shortcuts (1024, 8192) stay exact
    wide = torch.cat([torch.randn(4, 20000) * s for s in (0.1, 0.001, 0.00003)])
    p = sparsemax(wide)
    supports = (p > 0).sum(-1)
    assert supports.min() < 1024 and supports.max() > 8192
    assert torch.allclose(p, Sparsemax(dim=-1)(wide), atol=1e-6)
    # any dim (the `sparsemax` package's own dim=0 is wrong, so compare with our dim=-1 instead)
    assert torch.equal(sparsemax(z.T, dim=0), sparsemax(z).T)


def test_procrustes_recovers_a_known_rotation():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 16, generator=gen)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=gen))
    w = procrustes(x, x @ q)
    assert torch.allclose(w, q, atol=1e-4)
    assert torch.allclose(w @ w.T, torch.eye(16), atol=1e-5)


def test_chunked_search_equals_unchunked_reference():
    gen = torch.Generator().manual_seed(1)
    a = torch.nn.functional.normalize(torch.randn(53, 8, generator=gen), dim=1)
    b = torch.nn.functional.normalize(torch.randn(71, 8, generator=gen), dim=1)
    full = a @ b.T
    ref_i = torch.arange(53)[full.argmax(0)[full.argmax(1)] == torch.arange(53)]
    for block in (5, 16, 10_000):
        a_best, a_score, b_best, _ = nearest_neighbours(a, b, block=block)
        assert torch.equal(a_best, full.argmax(1)) and torch.equal(b_best, full.argmax(0))
        assert torch.allclose(a_score, full.max(1).values)
        i, j = mutual_nearest_neighbours(a, b, block=block)
        assert torch.equal(i, ref_i) and torch.equal(j, full.argmax(1)[ref_i])
    values = torch.randn(71, 4, generator=gen)
    small, support_small = sparsemax_mixture(a, b, values, max_elements=100)  # one query row at a time
    big, support_big = sparsemax_mixture(a, b, values, max_elements=10**9)
    assert torch.allclose(small, sparsemax(full) @ values, atol=1e-5)
    assert torch.allclose(small, big, atol=1e-6) and torch.equal(support_small, support_big)


def test_unibridge_copies_mnn_pairs_and_mixes_the_rest():
    # base: 2 shared + 3 other tokens; target: 2 shared + 3 new ones, one of which never occurs
    source = Vocab.from_tokens(["<s>", "▁a", "▁b", "▁p", "▁q", "▁r"], specials={"cls": "<s>"})
    target = Vocab.from_tokens(["<s>", "▁a", "▁b", "▁x", "▁y", "▁never"], specials={"cls": "<s>"})
    emb = torch.arange(6 * 4, dtype=torch.float32).reshape(6, 4)
    e = torch.eye(6)
    # fastText vectors built so that x<->q and y<->p are mutual nearest neighbours, r matches nothing
    src_vec = TokenVectors(ids=[1, 2, 3, 4, 5], vectors=torch.stack([e[0], e[1], e[3], e[2], -e[0]]).numpy())
    tgt_vec = TokenVectors(ids=[1, 2, 3, 4], vectors=torch.stack([e[0], e[1], e[2], e[3]]).numpy())
    out, rows = unibridge_init(emb, source, target, src_vec, tgt_vec, alignment="none", seed=0)
    assert rows.pairs("special") == [(0, 0)]
    assert rows.pairs("lexical") == [(1, 1), (2, 2)]
    assert rows.pairs("semantic") == [(3, 4), (4, 3)]
    assert torch.equal(out[3], emb[4]) and torch.equal(out[4], emb[3])
    assert rows.counts() == {"random": 1, "special": 1, "lexical": 2, "semantic": 2, "sparsemax": 0}
    # without the semantic step's partner, "y" gets a sparsemax mixture of the aligned rows instead
    src_vec2 = TokenVectors(ids=[1, 2, 4], vectors=torch.stack([e[0], e[1], e[2]]).numpy())
    tgt_vec2 = TokenVectors(
        ids=[1, 2, 3, 4], vectors=torch.stack([e[0], e[1], e[2], e[0] + 0.1 * e[1]]).numpy()
    )
    out2, rows2 = unibridge_init(emb, source, target, src_vec2, tgt_vec2, alignment="none", seed=0)
    assert rows2.pairs("semantic") == [(3, 4)]
    assert rows2.counts()["sparsemax"] == 1
    unit = torch.nn.functional.normalize(torch.from_numpy(tgt_vec2.vectors), dim=1)
    w = sparsemax(unit[3:4] @ unit[:3].T)  # query "y" against the aligned tokens a, b, x
    assert (w == 0).any() and torch.isclose(w.sum(), torch.tensor(1.0))
    assert torch.allclose(out2[4], (w @ out2[[1, 2, 3]])[0], atol=1e-6)


# ---------------------------------------------------------------------- initialize
@pytest.mark.parametrize("base_name", ["tiny_xlmr_dir", "tiny_bert_dir"])
@pytest.mark.parametrize(
    "method,alignment",
    [
        ("unibridge", "procrustes"),
        ("unibridge", "none"),
        ("focus", "procrustes"),
        ("overlap", "none"),
        ("random", "none"),
    ],
)
def test_each_method_shape_dtype_and_row_accounting(
    request, base_name, method, alignment, target_tok, xx_lines, tmp_path
):
    base = request.getfixturevalue(base_name)
    emb, report = initialize(
        base, target_tok, xx_lines, method=method, alignment=alignment, fasttext=FT, cache_dir=tmp_path
    )
    assert emb.shape == (len(target_tok), 32) and emb.dtype == torch.float32
    assert torch.isfinite(emb).all()
    assert sum(report.rows.values()) == report.target_rows == len(target_tok)
    assert report.method == method
    if method == "random":
        assert report.rows["random"] == len(target_tok)
    else:
        assert report.rows["special"] == 5 and report.rows["lexical"] > 20
    if method == "unibridge":
        assert report.fasttext["source_vocab"] > 0 and report.fasttext["target_vocab"] > 0
        assert report.alignment == alignment
    json.dumps(report.to_dict())  # the report is JSON-safe


def test_overlap_rows_are_exact_copies(tiny_bert_dir, target_tok, xx_lines):
    source_emb, source_tok = _base(tiny_bert_dir)
    emb, report = initialize((source_emb, source_tok), target_tok, method="overlap")
    expected = lexical_overlap(Vocab.from_tokenizer(source_tok), Vocab.from_tokenizer(target_tok))
    assert dict(report.row_sources.pairs("lexical")) == expected
    for t, s in expected.items():
        assert torch.equal(emb[t], source_emb[s])
    # <s> took [CLS]'s row: special tokens are paired by role
    assert torch.equal(emb[target_tok.convert_tokens_to_ids("<s>")], source_emb[source_tok.cls_token_id])
    assert report.marker_styles == {"source": "wordpiece", "target": "sentencepiece"}


def test_semantic_rows_are_exact_copies(tiny_xlmr_dir, greek_tok, greek_lines, tmp_path):
    source_emb, source_tok = _base(tiny_xlmr_dir)
    emb, report = initialize(
        (source_emb, source_tok), greek_tok, greek_lines, fasttext=FT, cache_dir=tmp_path
    )
    pairs = report.row_sources.pairs("semantic")
    assert pairs and len(pairs) == report.rows["semantic"]
    for t, s in pairs:
        assert torch.equal(emb[t], source_emb[s])


def test_zero_overlap_still_runs_the_semantic_step(tiny_xlmr_dir, greek_tok, greek_lines, tmp_path):
    emb, report = initialize(tiny_xlmr_dir, greek_tok, greek_lines, fasttext=FT, cache_dir=tmp_path)
    assert report.rows["lexical"] == 0
    assert report.rows["special"] == 5  # [CLS] <- <s> etc.: roles, not strings
    assert report.rows["semantic"] > 0 and report.rows["sparsemax"] > 0
    assert report.details["alignment"]["anchors"] == 0 and report.details["alignment"].get("skipped")
    assert any("0 lexical rows" in w for w in report.warnings)
    assert any("Procrustes alignment skipped" in w for w in report.warnings)
    assert torch.isfinite(emb).all()


def test_same_seed_same_tensor_other_seed_other_tensor(tiny_xlmr_dir, target_tok, xx_lines):
    runs = [
        initialize(tiny_xlmr_dir, target_tok, xx_lines, seed=seed, fasttext=FT, cache_dir=False)[0]
        for seed in (3, 3, 4)
    ]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_fasttext_cache_hit_on_second_run(tiny_xlmr_dir, target_tok, toy_corpus, tmp_path):
    first_emb, first = initialize(tiny_xlmr_dir, target_tok, toy_corpus, fasttext=FT, cache_dir=tmp_path)
    second_emb, second = initialize(tiny_xlmr_dir, target_tok, toy_corpus, fasttext=FT, cache_dir=tmp_path)
    assert first.fasttext["cache_hits"] == 0 and second.fasttext["cache_hits"] == 2
    assert torch.equal(first_emb, second_emb)
    assert len(list(tmp_path.glob("*.safetensors"))) == 2  # one space per tokenizer
    # other settings, other key
    _, third = initialize(
        tiny_xlmr_dir, target_tok, toy_corpus, fasttext=FT.replace(epochs=3), cache_dir=tmp_path
    )
    assert third.fasttext["cache_hits"] == 0


def test_fasttext_cache_keys_the_rows_kept(tiny_xlmr_dir, target_tok, toy_corpus, tmp_path):
    """Vectors trained without the ids at or beyond num_rows must not be served to a call wanting all."""
    some = train_token_vectors(toy_corpus, target_tok, FT, num_rows=60, cache_dir=tmp_path)
    every = train_token_vectors(toy_corpus, target_tok, FT, cache_dir=tmp_path)
    assert max(some.ids) < 60 <= max(every.ids)
    assert len(list(tmp_path.glob("*.safetensors"))) == 2


def test_a_generator_corpus_is_read_once_and_trained_on(tiny_xlmr_dir, target_tok, xx_lines):
    from_list, _ = initialize(tiny_xlmr_dir, target_tok, xx_lines, fasttext=FT, cache_dir=False)
    from_generator, _ = initialize(
        tiny_xlmr_dir, target_tok, (line for line in xx_lines), fasttext=FT, cache_dir=False
    )
    assert torch.equal(from_list, from_generator)


def test_procrustes_with_fewer_anchors_than_dimensions_says_it_is_underdetermined(
    tiny_xlmr_dir, target_tok, xx_lines
):
    _, small = initialize(tiny_xlmr_dir, target_tok, xx_lines, fasttext=FT, cache_dir=False)
    anchors = small.details["alignment"]["anchors"]
    assert 16 <= anchors < 300 and not small.details["alignment"].get("underdetermined")
    _, wide = initialize(tiny_xlmr_dir, target_tok, xx_lines, fasttext=FT.replace(dim=300), cache_dir=False)
    assert wide.details["alignment"]["underdetermined"]
    assert any(f"dimension of at most {anchors}" in w for w in wide.warnings)


def test_tokenizer_fingerprint_ignores_truncation_state(tiny_xlmr_dir):
    from crossling.embeddings import tokenizer_fingerprint

    _, tok = _base(tiny_xlmr_dir)
    before = tokenizer_fingerprint(tok)
    tok(["mama baba mtoto"] * 2, truncation=True, max_length=4, padding="max_length")
    assert tok.backend_tokenizer.truncation is not None  # the call left its state behind
    assert tokenizer_fingerprint(tok) == before


def test_fasttext_vectors_are_deterministic_and_fully_trained(tiny_xlmr_dir, xx_lines):
    _, tok = _base(tiny_xlmr_dir)
    a = train_token_vectors(xx_lines, tok, FT, seed=0)
    b = train_token_vectors(xx_lines, tok, FT, seed=0)
    c = train_token_vectors(xx_lines, tok, FT, seed=1)
    assert np.array_equal(a.ids, b.ids) and np.array_equal(a.vectors, b.vectors)
    assert not np.array_equal(a.vectors, c.vectors)
    # fastText's own init leaves most rows unset when n-grams are off; ours must not
    assert np.isfinite(a.vectors).all() and (np.abs(a.vectors).sum(1) > 0).all()


def test_in_memory_base_keeps_dtype_and_extra_rows(tiny_xlmr_dir, target_tok):
    source_emb, source_tok = _base(tiny_xlmr_dir)
    padded = torch.cat([source_emb, torch.zeros(7, source_emb.shape[1])]).to(torch.float16)  # e5-small style
    emb, report = initialize((padded, source_tok), target_tok, method="overlap")
    assert emb.dtype == torch.float16 and report.source_rows == len(source_tok) + 7


def test_unibridge_block_size_does_not_change_the_result(tiny_bert_dir, target_tok, xx_lines, tmp_path):
    a, _ = initialize(tiny_bert_dir, target_tok, xx_lines, fasttext=FT, cache_dir=tmp_path, block_size=4096)
    b, _ = initialize(tiny_bert_dir, target_tok, xx_lines, fasttext=FT, cache_dir=tmp_path, block_size=3)
    assert torch.equal(a, b)


# ---------------------------------------------------------------------- bad input
def test_empty_and_tiny_corpus_are_refused(tiny_xlmr_dir, target_tok, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(EmbeddingInitError, match="is empty"):
        initialize(tiny_xlmr_dir, target_tok, empty, fasttext=FT, cache_dir=False)
    with pytest.raises(EmbeddingInitError, match="is empty"):
        initialize(tiny_xlmr_dir, target_tok, [], method="focus", fasttext=FT, cache_dir=False)
    with pytest.raises(EmbeddingInitError, match="only 3 non-empty line"):
        initialize(tiny_xlmr_dir, target_tok, ["mama", "baba", "mtoto"], fasttext=FT, cache_dir=False)
    with pytest.raises(EmbeddingInitError, match="does not exist"):
        initialize(tiny_xlmr_dir, target_tok, tmp_path / "missing.txt", fasttext=FT, cache_dir=False)
    with pytest.raises(EmbeddingInitError, match="pass a corpus"):
        initialize(tiny_xlmr_dir, target_tok, None)
    # the baselines need no corpus at all
    assert initialize(tiny_xlmr_dir, target_tok, [], method="overlap")[1].rows["lexical"] > 0


def test_unloadable_base_or_tokenizer_gives_a_clear_error(tiny_xlmr_dir, target_tok, tmp_path):
    no_tokenizer = tmp_path / "model-without-tokenizer"
    no_tokenizer.mkdir()
    (no_tokenizer / "config.json").write_text('{"model_type": "bert"}', encoding="utf-8")
    with pytest.raises(EmbeddingInitError, match="cannot load the tokenizer of the base model"):
        initialize(no_tokenizer, target_tok, method="overlap")
    with pytest.raises(EmbeddingInitError, match="cannot load the tokenizer of the base model"):
        initialize(tmp_path / "does-not-exist", target_tok, method="overlap")
    with pytest.raises(EmbeddingInitError, match="cannot load the target tokenizer"):
        initialize(tiny_xlmr_dir, tmp_path / "no-such-tokenizer", method="overlap")
    with pytest.raises(ConfigError, match="unknown method"):
        initialize(tiny_xlmr_dir, target_tok, method="wechsel")
    with pytest.raises(ConfigError, match="unknown alignment"):
        initialize(tiny_xlmr_dir, target_tok, method="overlap", alignment="cca")


# ---------------------------------------------------------------------- files and CLI
def test_save_and_load_round_trip(tiny_xlmr_dir, target_tok, tmp_path):
    emb, report = initialize(tiny_xlmr_dir, target_tok, method="overlap")
    out = save_initialization(tmp_path / "emb", emb, report)
    assert sorted(p.name for p in out.iterdir()) == ["embeddings.safetensors", "init_report.json"]
    loaded, loaded_report = load_initialization(out)
    assert torch.equal(loaded, emb) and loaded_report.rows == report.rows
    assert loaded_report.row_sources.pairs("lexical") == report.row_sources.pairs("lexical")
    save_initialization(out, emb, report)  # replacing an earlier output is fine ...
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(ArtifactError, match="refusing to replace"):  # ... anything else is not
        save_initialization(tmp_path / "project", emb, report)
    assert (tmp_path / "project" / "notes.txt").read_text(encoding="utf-8") == "keep me"


def test_cli_init_writes_embeddings_and_report(tiny_bert_dir, target_tok_dir, toy_corpus, tmp_path, capsys):
    from crossling.cli import main

    out = tmp_path / "emb"
    argv = [
        "init",
        "--base",
        str(tiny_bert_dir),
        "--tokenizer",
        str(target_tok_dir),
        "--corpus",
        str(toy_corpus),
        "--out",
        str(out),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--ft-dim",
        "16",
        "--ft-epochs",
        "2",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "unibridge/procrustes" in printed and "lexical" in printed and "wrote" in printed
    emb, report = load_initialization(out)
    assert emb.shape[0] == report.target_rows and report.fasttext["dim"] == 16
    # bad input: one line on stderr, exit status 1, no traceback
    assert (
        main(
            [
                "init",
                "--base",
                str(tmp_path / "nope"),
                "--tokenizer",
                str(target_tok_dir),
                "--out",
                str(tmp_path / "x"),
                "--method",
                "overlap",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "cannot load the tokenizer of the base model" in err and "Traceback" not in err


def test_byte_level_bpe_base_matches_through_marker_normalisation(target_tok, xx_lines):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import RobertaTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train_from_iterator(xx_lines, trainers.BpeTrainer(vocab_size=300, special_tokens=specials))
    bpe = RobertaTokenizerFast(tokenizer_object=tok)
    source_emb = torch.randn(len(bpe), 32, generator=torch.Generator().manual_seed(0))
    emb, report = initialize((source_emb, bpe), target_tok, method="overlap")
    assert report.marker_styles["source"] == "bytelevel"
    pairs = report.row_sources.pairs("lexical")
    assert len(pairs) > 20
    for t, s in pairs:  # e.g. target "▁mama" <- base "Ġmama"
        assert normalize_token(bpe.convert_ids_to_tokens(s), "bytelevel").lower() == (
            target_tok.convert_ids_to_tokens(t).lower()
        )
        assert torch.equal(emb[t], source_emb[s])
