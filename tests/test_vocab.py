"""Vocabulary size search (UniBridge Alg. 1), ALP, the XLM-R style tokenizer and `crossling vocab`.

Real text: the first Amharic New Testament verses from the shared data, with small sizes so the
whole file runs in seconds.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import pytest

from crossling.cli import main
from crossling.errors import ConfigError, CrosslingError, DataFormatError
from crossling.vocab import (
    CorpusTooSmallError,
    alp_from_counts,
    average_log_probability,
    build_tokenizer,
    gain_below,
    reference_alp,
    search_vocab_size,
    size_grid,
    train_fixed_size,
    train_tokenizer,
)


@pytest.fixture(scope="module")
def amharic(shared_data) -> list[str]:
    from crossling.data import read_bible

    verses = read_bible(shared_data / "bible_corpus" / "Amharic-NT.verses.tsv")
    return [v["text"] for _, v in zip(range(2000), verses, strict=False)]


@pytest.fixture(scope="module")
def amharic_file(amharic, tmp_path_factory):
    path = tmp_path_factory.mktemp("amh") / "amh.txt"
    path.write_text("\n".join(amharic[:1000]) + "\n", encoding="utf-8")
    return path


def assert_same_search(naive, fast):
    assert fast.chosen_size == naive.chosen_size
    assert fast.stop_reason == naive.stop_reason
    assert fast.max_feasible_size == naive.max_feasible_size
    assert [s.size for s in fast.trace] == [s.size for s in naive.trace]
    for a, b in zip(naive.trace, fast.trace, strict=True):
        assert b.alp == pytest.approx(a.alp, rel=1e-12)
        assert (a.delta is None) == (b.delta is None)
        if a.delta is not None:
            assert b.delta == pytest.approx(a.delta, rel=1e-9, abs=1e-9)
    # not only the same numbers: the same SentencePiece model, byte for byte
    assert fast.model_proto == naive.model_proto


# ------------------------------------------------------------------------------------ ALP
def test_alp_equals_the_formula_on_a_hand_made_corpus():
    # tokens: s1 = a b, s2 = b b c, s3 = (nothing). counts a=1 b=3 c=1, N=5, |D|=3
    token_ids = [[0, 1], [1, 1, 2], []]
    la, lb, lc = math.log(1 / 5), math.log(3 / 5), math.log(1 / 5)
    expected = ((la + lb) + (lb + lb + lc) + 0.0) / 3
    assert average_log_probability(token_ids) == pytest.approx(expected, rel=1e-15)
    assert alp_from_counts([1, 3, 1, 0], 3) == pytest.approx(expected, rel=1e-15)
    vocab = {"a": [0, 1], "b": [1, 1, 2], "": []}
    assert reference_alp(["a", " b ", ""], lambda s: vocab[s], 4) == pytest.approx(expected, rel=1e-15)


def test_stopping_rule_and_grid():
    assert gain_below(2.0, 5.0) and gain_below(-2.0, 5.0) and not gain_below(-7.0, 5.0)
    assert gain_below(-7.0, 5.0, absolute=False)  # the signed rule also stops on a drop
    assert not gain_below(5.0, 5.0)
    assert size_grid(7000, 1000, 10000) == [7000, 8000, 9000, 10000]
    assert size_grid(7000, 1000, 9500) == [7000, 8000, 9000]


# ------------------------------------------------------------------------ naive == fast
def test_fast_equals_naive_when_the_gain_converges(amharic):
    kwargs = dict(start=300, step=100, max_size=3000, epsilon=5.0, progress=False)
    naive = search_vocab_size(amharic, naive=True, **kwargs)
    fast = search_vocab_size(amharic, **kwargs)
    assert naive.mode == "naive" and fast.mode == "fast"
    assert naive.stop_reason == "converged"
    assert len(naive.trace) >= 3  # a real search, not a first-step stop
    last = naive.trace[-1]
    assert last.size == naive.chosen_size and abs(last.delta) < 5.0
    assert all(abs(s.delta) >= 5.0 for s in naive.trace[1:-1])
    assert naive.trace[0].delta is None
    assert_same_search(naive, fast)


def test_fast_equals_naive_when_the_corpus_caps_the_size(amharic):
    # epsilon 0 never converges: the search runs into SentencePiece's largest feasible size
    lines = amharic[:300]
    kwargs = dict(start=300, step=200, max_size=100_000, epsilon=0.0, progress=False)
    naive = search_vocab_size(lines, naive=True, **kwargs)
    fast = search_vocab_size(lines, workers=3, **kwargs)  # a batch that straddles the cap
    assert naive.stop_reason == "capped"
    assert naive.chosen_size < naive.max_feasible_size < naive.chosen_size + 200
    assert naive.trace[-1].size == naive.chosen_size
    assert_same_search(naive, fast)


def test_fast_equals_naive_at_max_size_and_with_seeded_sampling(amharic):
    kwargs = dict(start=400, step=300, max_size=1000, epsilon=0.0, progress=False, seed=7)
    kwargs["spm_options"] = {"input_sentence_size": 500}  # SentencePiece samples 500 sentences
    naive = search_vocab_size(amharic, naive=True, **kwargs)
    fast = search_vocab_size(amharic, **kwargs)
    again = search_vocab_size(amharic, **kwargs)
    assert naive.stop_reason == "max_size" and naive.chosen_size == 1000
    assert_same_search(naive, fast)
    assert again.model_proto == fast.model_proto  # deterministic run to run


def test_search_writes_the_chosen_model(amharic_file, tmp_path):
    import sentencepiece as spm

    kwargs = dict(start=500, step=500, max_size=1000, progress=False)
    result = search_vocab_size(amharic_file, out_dir=tmp_path, **kwargs)
    assert result.model_path == tmp_path / "sentencepiece.model"
    sp = spm.SentencePieceProcessor(model_file=str(result.model_path))
    assert sp.get_piece_size() == result.chosen_size
    assert result.n_sentences == 1000
    assert json.loads(json.dumps(result.to_dict()))["chosen_size"] == result.chosen_size


# ------------------------------------------------------------------------- tokenizer
def test_hf_tokenizer_matches_sentencepiece(amharic, tmp_path):
    import sentencepiece as spm
    from transformers import AutoTokenizer, XLMRobertaTokenizerFast

    out = train_tokenizer(amharic[:1500], 1200, tmp_path / "tok")
    tok = AutoTokenizer.from_pretrained(out)
    sp = spm.SentencePieceProcessor(model_file=str(out / "sentencepiece.model"))
    assert isinstance(tok, XLMRobertaTokenizerFast)
    assert len(tok) == 1200 + 2 == sp.get_piece_size() + 2
    assert tok.convert_tokens_to_ids(["<s>", "<pad>", "</s>", "<unk>"]) == [0, 1, 2, 3]
    assert tok.mask_token_id == len(tok) - 1
    samples = amharic[1500:1800] + [
        "  ብዙ   ክፍተት  ",  # extra and edge spaces
        "ＡＢＣ ﬁ x\u00a0y",  # NFKC: full width, ligature, no-break space
        "日本語 と English 123",  # characters never seen: <unk>
        "a\tb\nc",
    ]
    for text in samples:
        expected = [3 if i == sp.unk_id() else i + 1 for i in sp.encode(text)]  # fairseq offset
        assert tok(text, add_special_tokens=False)["input_ids"] == expected, text
        pieces = sp.encode(text, out_type=str)
        if sp.unk_id() not in sp.encode(text):
            assert tok.tokenize(text) == pieces, text
    ids = tok(amharic[0])["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2
    assert tok.decode(ids, skip_special_tokens=True) == sp.decode(sp.encode(amharic[0]))


def test_fixed_size_result_and_tokenizer_from_bytes(amharic):
    result = train_fixed_size(amharic[:800], 700)
    assert result.stop_reason == "fixed" and result.chosen_size == 700
    assert len(result.trace) == 1 and result.trace[0].delta is None and result.trace[0].alp < 0
    assert len(build_tokenizer(result.model_proto)) == 702


# ------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_crossling_errors(tmp_path):
    with pytest.raises(DataFormatError, match="no such file"):
        search_vocab_size(tmp_path / "missing.txt", progress=False)

    blank = tmp_path / "blank.txt"
    blank.write_text("\n   \n\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="blank.txt"):
        search_vocab_size(blank, progress=False)
    with pytest.raises(DataFormatError, match="no non-empty line"):
        search_vocab_size(["", "  "], progress=False)

    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("première ligne\n".encode() + "deuxième ligne\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"latin1\.txt:2"):
        search_vocab_size(latin1, progress=False)

    tiny = ["hello world", "foo bar baz"]
    with pytest.raises(CorpusTooSmallError, match="at most 16 pieces") as err:
        search_vocab_size(tiny, start=200, step=100, max_size=1000, progress=False)
    assert err.value.max_size == 16 and err.value.requested == 200
    with pytest.raises(CorpusTooSmallError, match="at most 16"):
        train_fixed_size(tiny, 100)
    with pytest.raises(ConfigError, match="smaller than the 15 pieces"):
        train_fixed_size(tiny, 8)

    for kwargs, message in [
        (dict(start=9000, max_size=8000), "larger than max_size"),
        (dict(step=0), "step must be positive"),
        (dict(step=-5), "step must be positive"),
        (dict(epsilon=float("nan")), "epsilon"),
        (dict(workers=0), "workers"),
        (dict(spm_options={"vocab_size": 5}), "unsupported SentencePiece option"),
    ]:
        with pytest.raises(ConfigError, match=message):
            search_vocab_size(tiny, progress=False, **kwargs)


def test_capped_search_on_a_tiny_corpus_does_not_crash():
    tiny = ["hello world", "foo bar baz", "hello foo"]
    for naive in (True, False):
        kwargs = dict(start=15, step=1, max_size=100, epsilon=0.0, progress=False)
        result = search_vocab_size(tiny, naive=naive, **kwargs)
        assert result.stop_reason == "capped"
        assert result.chosen_size == result.max_feasible_size == result.trace[-1].size


# ------------------------------------------------------------------------------ CLI
def test_cli_search_writes_tokenizer_trace_and_plot(amharic_file, tmp_path, capsys):
    from transformers import AutoTokenizer

    out = tmp_path / "tok"
    argv = ["vocab", "--corpus", str(amharic_file), "--out", str(out), "--no-progress"]
    rc = main([*argv, "--start", "400", "--step", "200", "--max-size", "1000", "--epsilon", "5"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "chosen size" in printed and "ALP" in printed
    report = json.loads((out / "vocab_search.json").read_text(encoding="utf-8"))
    assert report["chosen_size"] in [s["size"] for s in report["trace"]]
    assert {"size", "alp", "delta", "seconds"} <= set(report["trace"][0])
    assert report["params"]["trainer"]["num_threads"] == 16
    assert ET.parse(out / "alp.svg").getroot().tag.endswith("svg")
    assert len(AutoTokenizer.from_pretrained(out)) == report["chosen_size"] + 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers

    # an existing result is kept unless --overwrite
    assert main([*argv, "--fixed-size", "500"]) == 1
    assert "not empty" in capsys.readouterr().err
    assert main([*argv, "--fixed-size", "500", "--overwrite"]) == 0
    assert json.loads((out / "vocab_search.json").read_text())["chosen_size"] == 500
    assert not (out / "alp.svg").exists()


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    out = tmp_path / "tok"
    assert main(["vocab", "--corpus", str(tmp_path / "nope.txt"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("crossling vocab: error:") and "nope.txt: no such file" in err
    assert "Traceback" not in err and not out.exists()
    corpus = tmp_path / "c.txt"
    corpus.write_text("hello world\n", encoding="utf-8")
    assert main(["vocab", "--corpus", str(corpus), "--out", str(out), "--start", "5", "--step", "0"]) == 1
    assert "step must be positive" in capsys.readouterr().err


def test_errors_are_crossling_errors():
    assert issubclass(CorpusTooSmallError, DataFormatError)
    assert issubclass(CorpusTooSmallError, CrosslingError)


def test_seeded_sampling_gives_the_same_model_in_every_process(amharic_file, tmp_path):
    """SentencePiece's own sampling draws another sample in each new process whatever the seed."""
    import subprocess
    import sys

    code = (
        "import hashlib, sys\n"
        "from crossling.vocab.trainer import train_unigram\n"
        "model = train_unigram(sys.argv[1], 400, seed=int(sys.argv[2]), train_threads=1,\n"
        "                      options={'input_sentence_size': 300})\n"
        "print(hashlib.sha256(model).hexdigest())\n"
    )

    def digest(seed: int) -> str:
        run = subprocess.run(
            [sys.executable, "-c", code, str(amharic_file), str(seed)],
            capture_output=True,
            text=True,
            check=True,
        )
        return run.stdout.strip()

    assert digest(7) == digest(7) != digest(8)


def test_a_sentence_sample_is_drawn_once_and_shuffle_false_takes_the_first_lines(tmp_path):
    from crossling.vocab.trainer import _sampled_lines

    corpus = tmp_path / "c.txt"
    corpus.write_text("".join(f"line {i}\n" for i in range(100)), encoding="utf-8")
    sample = _sampled_lines(corpus, 10, seed=3)
    assert _sampled_lines(corpus, 10, seed=3) == sample  # a search's sizes share one sample
    lines = sample.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 10 and lines != [f"line {i}" for i in range(10)]
    first = _sampled_lines(corpus, 10, seed=3, shuffle=False).read_text(encoding="utf-8").splitlines()
    assert first == [f"line {i}" for i in range(10)]
    assert _sampled_lines(corpus, 100, seed=3) == corpus  # no more lines than asked: the file itself
