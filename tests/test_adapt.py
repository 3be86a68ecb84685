"""`crossling adapt` end to end on the tiny model: CLI, resume after a kill, two processes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crossling.artifacts import LanguagePack
from crossling.cli import main
from crossling.errors import CrosslingError

SMOKE = ["--budget", "smoke", "--eval-lines", "20"]


def _adapt_args(base: Path, corpus: Path, out: Path, *extra: str) -> list[str]:
    return [
        "adapt",
        "--lang",
        "xx",
        "--base",
        str(base),
        "--corpus",
        str(corpus),
        "--out",
        str(out),
        *SMOKE,
        *extra,
    ]


def test_adapt_keeping_the_base_vocabulary(tmp_path, tiny_xlmr_dir, toy_corpus, capsys):
    out = tmp_path / "packs" / "xx"
    assert main(_adapt_args(tiny_xlmr_dir, toy_corpus, out, "--vocab", "base", "--max-steps", "6")) == 0
    assert "LanguagePack xx" in capsys.readouterr().out
    pack = LanguagePack.from_pretrained(out)
    assert not pack.has_own_vocabulary
    assert pack.reports["training"]["steps"] == 6
    assert pack.reports["corpus"]["cleaning"]["total"] == 200
    assert pack.encode(["Mama asoma kitabu."]).shape == (1, 32)
    assert (out / "adapter" / "adapter.safetensors").is_file()
    assert not list(out.rglob("*.bin")), "artifacts must not contain pickles"


def test_same_seed_same_pack_whatever_ran_before_in_the_process(tmp_path, tiny_xlmr_dir, toy_corpus):
    """A recipe runs many stages in one process: the fresh adapter and the fresh MLM head (a base
    without one, like e5-small) must not depend on that history."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    headless = tmp_path / "headless"
    AutoModel.from_pretrained(tiny_xlmr_dir).save_pretrained(headless)
    AutoTokenizer.from_pretrained(tiny_xlmr_dir).save_pretrained(headless)
    args = ("--vocab", "base", "--max-steps", "2")
    assert main(_adapt_args(headless, toy_corpus, tmp_path / "a", *args)) == 0
    torch.rand(1000)  # what an earlier stage in the same process would have drawn
    assert main(_adapt_args(headless, toy_corpus, tmp_path / "b", *args)) == 0
    torch.rand(7)
    assert main(_adapt_args(headless, toy_corpus, tmp_path / "c", *args, "--seed", "1")) == 0
    assert LanguagePack.from_pretrained(tmp_path / "a").reports["mlm_head"].startswith("fresh")
    for weights in ("adapter/adapter.safetensors", "mlm_head.safetensors"):
        a, b, c = (load_file(tmp_path / n / weights) for n in "abc")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), weights
        assert not all(torch.equal(a[k], c[k]) for k in a), weights


def test_adapt_with_a_new_vocabulary(tmp_path, tiny_bert_dir, toy_corpus, capsys):
    """All three stages: ALP search, UniBridge init (fastText), adapter; the pack carries all reports."""
    out = tmp_path / "packs" / "xx"
    search = ["--vocab-start", "60", "--vocab-step", "20", "--vocab-max", "140", "--epsilon", "0.5"]
    fasttext = ["--ft-dim", "16", "--ft-epochs", "2"]
    assert main(_adapt_args(tiny_bert_dir, toy_corpus, out, "--max-steps", "4", *search, *fasttext)) == 0
    printed = capsys.readouterr().out
    assert "vocabulary" in printed and "embeddings" in printed
    pack = LanguagePack.from_pretrained(out)
    assert pack.has_own_vocabulary
    search_report = pack.reports["vocab_search"]
    assert [step["size"] for step in search_report["trace"]][0] == 60
    assert search_report["chosen_size"] in {step["size"] for step in search_report["trace"]}
    init = pack.reports["init"]
    assert init["method"] == "unibridge" and init["target_rows"] == len(pack.tokenizer)
    assert sum(init["rows"].values()) == init["target_rows"]
    assert init["rows"]["lexical"] > 0  # the WordPiece base and the new unigram vocabulary share words
    ids = pack.tokenizer("Mama asoma kitabu.")["input_ids"]
    assert max(ids) < len(pack.tokenizer) and len(pack.tokenizer) == search_report["chosen_size"] + 2
    assert pack.encode(["Mama asoma kitabu."]).shape == (1, 32)


def test_adapt_with_given_tokenizer_and_fixed_size_rejects_mismatched_embeddings(
    tmp_path, tiny_bert_dir, toy_corpus
):
    from crossling.adapt import AdaptOptions, adapt
    from crossling.config import TrainingConfig, VocabSearchConfig
    from crossling.embeddings import initialize, save_initialization
    from crossling.vocab import train_tokenizer

    tok_small = train_tokenizer(toy_corpus, 80, tmp_path / "tok80")
    tok_large = train_tokenizer(toy_corpus, 100, tmp_path / "tok100")
    embeddings, report = initialize(tiny_bert_dir, tok_small, method="random")
    save_initialization(tmp_path / "emb80", embeddings, report)
    options = AdaptOptions(
        corpus=toy_corpus,
        tokenizer=tok_large,
        embeddings=tmp_path / "emb80",
        training=TrainingConfig.load("smoke", max_steps=2),
        eval_lines=10,
        progress=False,
    )
    with pytest.raises(CrosslingError, match="82 rows but the tokenizer has 102"):
        adapt("xx", tiny_bert_dir, tmp_path / "p", options)
    assert not (tmp_path / "p").exists()

    # --fixed-size and --method random: no fastText, a vocabulary of exactly that size
    options = AdaptOptions(
        corpus=toy_corpus,
        vocab_search=VocabSearchConfig.load(None, fixed_size=90),
        init_method="random",
        training=TrainingConfig.load("smoke", max_steps=2),
        eval_lines=10,
        progress=False,
    )
    pack = adapt("xx", tiny_bert_dir, tmp_path / "p2", options)
    assert len(pack.tokenizer) == 92
    assert pack.reports["vocab_search"]["stop_reason"] == "fixed"
    assert pack.reports["init"]["rows"]["random"] > 0


def test_missing_corpus_offline_says_what_to_pass(tmp_path, tiny_xlmr_dir, capsys, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    args = [
        "adapt",
        "--lang",
        "xx",
        "--base",
        str(tiny_xlmr_dir),
        "--out",
        str(tmp_path / "p"),
        "--vocab",
        "base",
    ]
    assert main(args) == 1
    assert "pass --corpus FILE" in capsys.readouterr().err


def test_empty_corpus_is_a_clear_error(tmp_path, tiny_xlmr_dir):
    from crossling.adapt import AdaptOptions, adapt

    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(CrosslingError, match="empty|no lines|usable"):
        adapt("xx", tiny_xlmr_dir, tmp_path / "p", AdaptOptions(corpus=empty, vocab="base"))
    assert not (tmp_path / "p").exists()


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return env


def test_resume_after_kill_finishes_with_a_valid_pack(tmp_path, tiny_xlmr_dir, toy_corpus):
    out = tmp_path / "xx"
    args = _adapt_args(
        tiny_xlmr_dir,
        toy_corpus,
        out,
        "--vocab",
        "base",
        "--max-steps",
        "400",
        "--save-steps",
        "10",
        "--batch-size",
        "4",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "crossling", *args],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoints = tmp_path / "xx.work" / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and not list(checkpoints.glob("checkpoint-*/trainer_state.json")):
        assert proc.poll() is None, "training ended before it could be interrupted"
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "a killed run must not leave a pack behind"
    done = sorted(int(p.name.split("-")[1]) for p in checkpoints.glob("checkpoint-*"))
    assert done and done[-1] < 400

    assert (
        main([*args[:-4], "--max-steps", "400", "--save-steps", "10", "--batch-size", "4", "--resume"]) == 0
    )
    pack = LanguagePack.from_pretrained(out)
    training = pack.reports["training"]
    assert training["steps"] == 400
    assert training["resumed_from"].startswith("checkpoint-")
    assert int(training["resumed_from"].split("-")[1]) >= done[0]


def test_torchrun_two_processes(tmp_path, tiny_xlmr_dir, toy_corpus):
    out = tmp_path / "xx"
    args = _adapt_args(tiny_xlmr_dir, toy_corpus, out, "--vocab", "base", "--max-steps", "4")
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
    ]
    result = subprocess.run(
        [*torchrun, "-m", "crossling", *args], env=_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    meta = json.loads((out / "crossling.json").read_text())
    assert meta["reports"]["processes"] == 2 and meta["reports"]["training"]["steps"] == 4
    assert result.stdout.count("LanguagePack xx") == 1  # only the main process reports


def test_an_out_that_is_not_a_pack_is_refused_before_any_work(tmp_path, tiny_xlmr_dir, toy_corpus, capsys):
    project = tmp_path / "project"
    project.mkdir()
    (project / "thesis.txt").write_text("years of work")
    assert main(_adapt_args(tiny_xlmr_dir, toy_corpus, project, "--vocab", "base", "--max-steps", "2")) == 1
    assert "is not a LanguagePack: refusing to replace it" in capsys.readouterr().err
    assert (project / "thesis.txt").read_text() == "years of work"
    assert not (tmp_path / "project.work").exists()  # nothing ran
