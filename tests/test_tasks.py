import pytest
import torch
from test_tasks_support import FAST, ner_records, nli_records, write_nli, write_xtreme
from transformers import AutoTokenizer, TrainerCallback

from crossling.artifacts import TaskAdapter
from crossling.config import TrainingConfig
from crossling.data import UPOS_TAGS
from crossling.errors import ConfigError, CrosslingError, DataFormatError
from crossling.tasks import (
    build_label_map,
    build_pack_model,
    check_iob2,
    collate,
    encode_records,
    encode_tagging,
    load_task_model,
    read_task_data,
    train_task,
)
from crossling.tasks.data import IGNORE

# shared fixtures (tiny packs, toy data, a trained NER adapter)
pytest_plugins = ["test_tasks_support"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------------- labelling and label maps
def test_first_subword_carries_the_tag_and_the_rest_is_ignored(tiny_xlmr_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_xlmr_dir)
    records = [
        {"tokens": ["Amina", "nyumbakubwajuakijiji", "Nairobi", "."], "tags": ["B-PER", "O", "B-LOC", "O"]}
    ]
    label2id = {"O": 0, "B-PER": 1, "B-LOC": 2}
    enc = encode_tagging(tokenizer, records, label2id, 64)
    labels, word_ids = enc.features[0]["labels"], enc.word_ids[0]
    assert word_ids.count(1) > 1, "the test needs a word split into several subwords"
    first = {}
    for position, word in enumerate(word_ids):
        if word is None:
            assert labels[position] == IGNORE
        elif word not in first:
            first[word] = position
            assert labels[position] == label2id[records[0]["tags"][word]]
        else:
            assert labels[position] == IGNORE
    assert sorted(first) == [0, 1, 2, 3]
    assert sum(label != IGNORE for label in labels) == 4


def test_label_all_subwords_continues_b_as_i(tiny_xlmr_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_xlmr_dir)
    records = [{"tokens": ["nyumbakubwajuakijiji"], "tags": ["B-LOC"]}]
    enc = encode_tagging(tokenizer, records, {"O": 0, "B-LOC": 1, "I-LOC": 2}, 64, label_all_subwords=True)
    assert [x for x in enc.features[0]["labels"] if x != IGNORE] == [1] + [2] * (
        len(enc.features[0]["labels"]) - 3
    )


def test_truncation_is_counted_and_prediction_fills_cut_words(trained_ner):
    _, model = trained_ner
    records = [{"tokens": ["mama"] * 40, "tags": ["O"] * 40}, {"tokens": ["baba", "."], "tags": ["O", "O"]}]
    enc = encode_records("ner", model.tokenizer, records, {"O": 0}, 16)
    assert enc.truncated == 1 and enc.words_cut > 0
    prediction = model.predict(records, max_length=16)
    assert [len(p) for p in prediction.labels] == [40, 2]
    assert prediction.report["truncated"] == 1
    assert prediction.report["words_filled_with_fallback"] == enc.words_cut


def test_a_last_word_without_subwords_is_not_counted_as_truncation(tiny_bert_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    words = ["the", "cat", "\u00a0"]
    assert 2 not in tokenizer(words, is_split_into_words=True).word_ids()  # the no-break space: nothing
    enc = encode_tagging(tokenizer, [{"tokens": words, "tags": ["O"] * 3}], {"O": 0}, 128)
    assert (enc.truncated, enc.words_cut, enc.words_without_subword) == (0, 0, 1)
    cut = encode_tagging(tokenizer, [{"tokens": words * 20, "tags": ["O"] * 60}], {"O": 0}, 8)
    assert cut.truncated == 1 and cut.words_cut > 0


def test_label_map_order_and_dev_labels_missing_from_train():
    train = [{"tokens": ["a", "b", "c"], "tags": ["B-PER", "O", "B-LOC"]}]
    assert build_label_map("ner", train) == ["O", "B-LOC", "B-PER"]
    dev = [{"tokens": ["a", "b"], "tags": ["B-MISC", "I-MISC"]}]
    with pytest.raises(DataFormatError, match=r"'B-MISC' \(1x\), 'I-MISC' \(1x\)"):
        build_label_map("ner", train, dev, dev_name="dev.tsv")
    pairs = [{"label": x} for x in ("contradiction", "entailment", "neutral")]
    assert build_label_map("nli", pairs) == ["entailment", "neutral", "contradiction"]


def test_pos_label_map_is_all_of_upos_so_treebanks_share_it():
    en = [{"tokens": ["dogs", "run"], "tags": ["NOUN", "VERB"]}]
    ar = [{"tokens": ["x", "y"], "tags": ["PROPN", "X"]}]
    assert build_label_map("pos", en) == build_label_map("pos", ar) == sorted(UPOS_TAGS)
    # a target tag the training treebank lacks is scorable, not refused
    build_label_map("pos", en, [{"tokens": ["%"], "tags": ["SYM"]}])
    # tags outside UPOS (e.g. a language-specific XPOS file) keep the training-only rule
    assert build_label_map("pos", [{"tokens": ["a"], "tags": ["NN"]}]) == ["NN"]


def test_a_stray_non_upos_tag_among_upos_ones_is_warned_about(caplog):
    typo = [{"tokens": ["dogs", "run", "fast", "now"], "tags": ["NOUN", "VERB", "ADV", "verb"]}]
    with caplog.at_level("WARNING", logger="crossling.tasks.labels"):
        labels = build_label_map("pos", typo, train_name="train.conllu")
    assert "verb" in labels and len(labels) == 4
    assert "train.conllu: tag(s) 'verb' are not Universal POS tags" in caplog.text


def test_ner_tags_must_be_iob2(tmp_path):
    bad = [{"tokens": ["Juma", "walks"], "tags": ["I-PER", "O"]}]
    with pytest.raises(DataFormatError, match="IOB1: pass to_iob2=True"):
        check_iob2(bad, source="x")
    with pytest.raises(DataFormatError, match="not IOB2"):
        check_iob2([{"tokens": ["Juma"], "tags": ["PER"]}], source="x")
    path = write_xtreme(tmp_path / "iob1.tsv", bad)
    with pytest.raises(DataFormatError, match="iob1.tsv"):
        read_task_data("ner", path)
    assert read_task_data("ner", path, to_iob2=True)[0]["tags"] == ["B-PER", "O"]


def test_nli_file_with_unknown_label_names_the_line(tmp_path):
    records = nli_records(30)
    records[25]["label"] = "maybe"
    path = write_nli(tmp_path / "nli.tsv", records)
    with pytest.raises(DataFormatError, match=r"nli.tsv:26: label 'maybe'"):
        read_task_data("nli", path)


def test_missing_unlabelled_text_and_missing_pack_are_clear(ner_files, en_pack, tmp_path):
    with pytest.raises(ConfigError, match="needs unlabelled text"):
        train_task("ner", ner_files["train"], tmp_path / "x", pack=en_pack, config={"adversarial": "grl"})
    with pytest.raises(ConfigError, match="pass pack="):
        train_task("ner", ner_files["train"], tmp_path / "x", base="b")


# ---------------------------------------------------------------------- training runs
def _history_falls(adapter: TaskAdapter, by: float = 0.3) -> None:
    losses = [h["task_loss"] for h in adapter.config["summary"]["history"]]
    assert len(losses) >= 3 and min(losses[-2:]) < (1 - by) * losses[0], losses


def _same_predictions(model_a, model_b, records) -> None:
    batch = collate(encode_records(model_a.task, model_a.tokenizer, records, None, 64).features, 1)
    assert torch.allclose(model_a.logits(batch), model_b.logits(batch), atol=1e-5)
    assert model_a.predict(records).labels == model_b.predict(records).labels


def test_ner_training_loss_falls_and_reload_predicts_identically(trained_ner, ner_files):
    adapter, model = trained_ner
    _history_falls(adapter)
    assert adapter.labels == ["O", "B-LOC", "B-PER"]
    assert (adapter.path / "adapter" / "adapter_config.json").is_file()
    assert not list((adapter.path / "adapter").glob("*.bin")), "adapters must be saved as safetensors"
    best = adapter.eval_results["dev"]["best_checkpoint"]
    assert best.startswith("checkpoint-")
    # the saved adapter holds the best checkpoint's weights (trainable ones only: no frozen base copied)
    from safetensors.torch import load_file

    state = load_file(
        adapter.path.parent / "ner-en.work" / "checkpoints" / best / "crossling_trainable.safetensors"
    )
    trainable = {f"model.{n}": p for n, p in model.model.named_parameters() if p.requires_grad}
    assert set(state) == set(trainable)
    assert all(torch.equal(state[n], trainable[n].detach()) for n in state)
    history = adapter.config["summary"]["dev_history"]
    assert adapter.eval_results["dev"]["f1"] == pytest.approx(max(h["f1"] for h in history))
    reloaded = load_task_model(adapter.path)
    _same_predictions(model, reloaded, ner_records(20, "en", 9))
    assert TaskAdapter.from_pretrained(adapter.path).config["data"]["train_examples"] == 160


def test_adapter_mode_trains_only_the_task_adapter_and_head(trained_ner, en_pack):
    _, model = trained_ner
    fresh = build_pack_model(en_pack).model.state_dict()
    trained = model.model.state_dict()
    for name, value in fresh.items():
        if ".pooler." not in name:  # unused, and freshly random in every load
            assert torch.equal(value, trained[name]), f"{name} changed"
    assert any(".adapters.ner_en." in n for n, p in model.model.named_parameters() if p.requires_grad)


def test_nli_training_and_reload(en_pack, tmp_path):
    train = write_nli(tmp_path / "train.tsv", nli_records(96))
    dev = write_nli(tmp_path / "dev.tsv", nli_records(30, seed=1))
    training = FAST.replace(max_steps=24, learning_rate=1e-2)
    adapter, model = train_task(
        "nli",
        train,
        tmp_path / "nli-en",
        dev=dev,
        pack=en_pack,
        training=training,
        progress=False,
        return_model=True,
    )
    _history_falls(adapter, by=0.15)
    assert adapter.labels == ["entailment", "neutral", "contradiction"]
    assert 0.0 <= adapter.eval_results["dev"]["accuracy"] <= 1.0
    _same_predictions(model, load_task_model(adapter.path, en_pack), nli_records(12, seed=2))


def test_finetune_mode_saves_a_full_model(task_base_dir, ner_files, tmp_path):
    adapter, model = train_task(
        "ner",
        ner_files["train"],
        tmp_path / "ft",
        base=task_base_dir,
        language="en",
        config={"mode": "finetune"},
        training=FAST.replace(max_steps=6),
        progress=False,
        return_model=True,
    )
    assert adapter.config["mode"] == "finetune" and adapter.language_pack is None
    assert (adapter.path / "model" / "model.safetensors").is_file() and not (
        adapter.path / "adapter"
    ).exists()
    base = build_pack_model(None, task_base_dir).model.state_dict()
    changed = [n for n, v in model.model.state_dict().items() if n in base and not torch.equal(v, base[n])]
    assert any("encoder.layer.0.attention" in n for n in changed)
    _same_predictions(model, load_task_model(adapter.path), ner_records(10, "en", 9))


def test_pack_with_its_own_vocabulary(xx_pack_new_vocab, tmp_path):
    train = write_xtreme(tmp_path / "train-xx.tsv", ner_records(40, "xx", 1))
    adapter, model = train_task(
        "ner",
        train,
        tmp_path / "ner-xx",
        pack=xx_pack_new_vocab,
        training=FAST.replace(max_steps=4),
        progress=False,
        return_model=True,
    )
    assert len(model.tokenizer) == model.model.get_input_embeddings().num_embeddings
    assert model.tokenizer.name_or_path.endswith("tokenizer")
    _same_predictions(model, load_task_model(adapter.path), ner_records(8, "xx", 9))


class _Interrupt(TrainerCallback):
    def __init__(self, at: int):
        self.at = at

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.at:
            raise KeyboardInterrupt


class _Poison(TrainerCallback):
    """Turns the head's weights into NaN after step `at`: the next loss is NaN."""

    def __init__(self, at: int):
        self.at = at

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.at:
            with torch.no_grad():
                model.model.heads["ner_en"][1].weight.fill_(float("nan"))


def test_resume_after_an_interrupted_run_matches_an_uninterrupted_one(en_pack, ner_files, tmp_path):
    config = TrainingConfig(max_steps=10, batch_size=8, learning_rate=5e-3, save_steps=4, max_length=64)
    kwargs = dict(pack=en_pack, training=config, progress=False, return_model=True)
    _, reference = train_task("ner", ner_files["train"], tmp_path / "ref", **kwargs)
    with pytest.raises(KeyboardInterrupt):
        train_task("ner", ner_files["train"], tmp_path / "run", callbacks=[_Interrupt(6)], **kwargs)
    assert (
        not (tmp_path / "run").exists() and (tmp_path / "run.work" / "checkpoints" / "checkpoint-4").is_dir()
    )
    adapter, resumed = train_task("ner", ner_files["train"], tmp_path / "run", resume=True, **kwargs)
    assert adapter.config["summary"]["resumed_from"] == "checkpoint-4"
    assert adapter.config["summary"]["steps"] == 10
    trained = {n: p for n, p in resumed.model.named_parameters() if p.requires_grad}
    for name, param in reference.model.named_parameters():
        if param.requires_grad:
            assert torch.allclose(param, trained[name], atol=1e-6), name


def test_divergence_stops_with_the_last_good_checkpoint(en_pack, ner_files, tmp_path):
    with pytest.raises(CrosslingError, match=r"diverged at step 5.*checkpoint-4"):
        train_task(
            "ner",
            ner_files["train"],
            tmp_path / "nan",
            pack=en_pack,
            training=FAST,
            progress=False,
            callbacks=[_Poison(5)],
        )
    assert not (tmp_path / "nan").exists()
    assert (tmp_path / "nan.work" / "checkpoints" / "checkpoint-4").is_dir()


# ---------------------------------------------------------------------- CLI
def test_cli_train_evaluate_analyze(en_pack, ner_files, tmp_path, capsys):
    from crossling.cli import main

    out = tmp_path / "cli-ner"
    code = main(
        [
            "train-task",
            "--task",
            "ner",
            "--train",
            str(ner_files["train"]),
            "--dev",
            str(ner_files["dev"]),
            "--pack",
            str(en_pack.path),
            "--out",
            str(out),
            "--budget",
            "smoke",
            "--max-steps",
            "4",
            "--save-steps",
            "2",
            "--no-progress",
        ]
    )
    assert code == 0 and (out / "crossling.json").is_file()
    assert "dev (en)" in capsys.readouterr().out
    code = main(
        [
            "evaluate",
            "--task-adapter",
            str(out),
            "--data",
            f"en={ner_files['dev']}",
            f"xx={ner_files['dev_xx']}",
            "--pack",
            str(en_pack.path),
            "--out",
            str(tmp_path / "report"),
        ]
    )
    assert code == 0 and (tmp_path / "report.json").is_file() and (tmp_path / "report.md").is_file()
    assert "| xx |" in capsys.readouterr().out
    # a Latin-1 file (CoNLL-2002's originals are): refused in UTF-8 with the way out, read with it
    latin1 = tmp_path / "dev-latin1.tsv"
    latin1.write_bytes(
        ner_files["dev"].read_text(encoding="utf-8").replace("a", "\u00e1", 1).encode("latin-1")
    )
    argv = ["evaluate", "--task-adapter", str(out), "--data", f"en={latin1}", "--pack", str(en_pack.path)]
    assert main(argv) == 1 and "--encoding latin-1" in capsys.readouterr().err
    assert main([*argv, "--encoding", "latin-1"]) == 0
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("the cat sees a dog\nmother reads a book\n", encoding="utf-8")
    b.write_text("paka aona mbwa\nmama asoma kitabu\n", encoding="utf-8")
    code = main(
        [
            "analyze",
            "alignment",
            "--pack",
            str(en_pack.path),
            "--task-adapter",
            str(out),
            "--parallel",
            str(a),
            str(b),
            "--out",
            str(tmp_path / "align"),
        ]
    )
    assert code == 0 and (tmp_path / "align.json").is_file()
    assert "median cosine" in capsys.readouterr().out
    assert (
        main(
            [
                "train-task",
                "--task",
                "ner",
                "--train",
                str(a),
                "--out",
                str(tmp_path / "y"),
                "--pack",
                str(en_pack.path),
            ]
        )
        == 1
    )


def test_pair_truncation_is_counted(tiny_xlmr_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_xlmr_dir)
    records = [{"text_a": "mama " * 30, "text_b": "baba " * 30, "label": "neutral"}, *nli_records(2)]
    enc = encode_records("nli", tokenizer, records, {"entailment": 0, "neutral": 1, "contradiction": 2}, 24)
    assert enc.truncated == 1 and max(len(f["input_ids"]) for f in enc.features) == 24


def test_madx_mode_pins_the_plain_settings():
    from crossling.config import TaskAdapterConfig

    assert TaskAdapterConfig.load("madx").reduction_factor == 16
    with pytest.raises(ConfigError, match="plain MAD-X"):
        TaskAdapterConfig(mode="madx", reduction_factor=8)
    assert TaskAdapterConfig(adversarial="keung").discriminator_classes == "binary"
    assert TaskAdapterConfig(adversarial="grl").discriminator_classes == "languages"


# ---------------------------------------------------------------------- limits and failure modes
def test_sentences_longer_than_the_model_are_truncated_never_fatal(en_pack, tmp_path):
    """The tiny model encodes 128 positions; --max-length 1000 and a 300-word sentence must not crash."""
    records = ner_records(20, "en", 5)
    records[3] = {"tokens": ["mama"] * 299 + ["Amina"], "tags": ["O"] * 299 + ["B-PER"]}
    adapter, model = train_task(
        "ner",
        records,
        tmp_path / "long",
        pack=en_pack,
        training=FAST.replace(max_steps=2, max_length=1000),
        progress=False,
        return_model=True,
    )
    assert adapter.config["training"]["max_length"] == 128  # what the model can encode
    assert adapter.config["data"]["train_truncation"]["truncated"] == 1
    prediction = model.predict(records[:5], max_length=4096)
    assert len(prediction.labels[3]) == 300 and prediction.report["max_length"] == 128
    assert prediction.report["truncated"] == 1 and prediction.report["words_filled_with_fallback"] > 0


def test_a_fresh_run_refuses_the_checkpoints_of_an_earlier_one(en_pack, ner_files, tmp_path):
    (tmp_path / "old.work" / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"holds checkpoints of an earlier run: pass --resume"):
        train_task("ner", ner_files["train"], tmp_path / "old", pack=en_pack, training=FAST, progress=False)


def test_weights_poisoned_before_a_save_are_never_checkpointed(en_pack, ner_files, tmp_path):
    # NaN weights after step 8, a save step: the loss is still finite, the weights are not
    with pytest.raises(CrosslingError, match=r"diverged at step 8: .*NaN/inf.*checkpoint-4"):
        train_task(
            "ner",
            ner_files["train"],
            tmp_path / "nan8",
            pack=en_pack,
            training=FAST,
            progress=False,
            callbacks=[_Poison(8)],
        )
    checkpoints = tmp_path / "nan8.work" / "checkpoints"
    assert (checkpoints / "checkpoint-4").is_dir() and not (checkpoints / "checkpoint-8").exists()


def test_head_labels_that_disagree_with_the_label_map_are_refused(trained_ner, en_pack, tmp_path):
    import json
    import shutil

    from crossling.errors import ArtifactError

    adapter, _ = trained_ner
    copy = shutil.copytree(adapter.path, tmp_path / "relabelled")
    meta = json.loads((copy / "crossling.json").read_text())
    meta["labels"] = list(reversed(meta["labels"]))
    (copy / "crossling.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="differ from its crossling.json label map"):
        load_task_model(copy, en_pack)


# ---------------------------------------------------------------------- CLI: help and bad input
def test_cli_help_explains_every_option():
    import argparse

    from crossling.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands = [sub.choices["train-task"], sub.choices["evaluate"]]
    analyses = next(a for a in sub.choices["analyze"]._actions if isinstance(a, argparse._SubParsersAction))
    commands.append(analyses.choices["alignment"])
    for command in commands:
        for action in command._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{command.prog} {action.option_strings[0]} has no help"


def test_cli_bad_input_gives_one_line_errors(en_pack, ner_files, tmp_path, capsys):
    from crossling.cli import main

    nli = write_nli(tmp_path / "nli.tsv", nli_records(6))
    misc = ner_records(4, "en", 3)
    misc[1]["tags"][0] = "B-MISC"
    dev_misc = write_xtreme(tmp_path / "dev-misc.tsv", misc)
    common = ["--pack", str(en_pack.path), "--budget", "smoke", "--no-progress"]
    paws = tmp_path / "paws.tsv"  # paraphrase labels 0/1: no NLI model should come of it
    paws.write_text("".join(f"a{i} b\ta{i} c\t{i % 2}\n" for i in range(8)), encoding="utf-8")
    cases = {
        "a 'pawsx' file, which has no nli labels": ["--task", "nli", "--train", str(paws)],
        "no such file": ["--task", "ner", "--train", str(tmp_path / "nope.tsv")],
        "expects LANG=PATH": ["--task", "ner", "--train", str(ner_files["train"]), "--adversarial", "grl"]
        + ["--adv-unlabelled", "xx"],
        "needs unlabelled text": [
            "--task",
            "ner",
            "--train",
            str(ner_files["train"]),
            "--adversarial",
            "keung",
        ],
        "which has no ner labels": ["--task", "ner", "--train", str(nli)],
        "'B-MISC' (1x)": ["--task", "ner", "--train", str(ner_files["train"]), "--dev", str(dev_misc)],
        "outside [1, inf]": ["--task", "ner", "--train", str(ner_files["train"]), "--reduction-factor", "0"],
    }
    for expected, args in cases.items():
        code = main(["train-task", *args, "--out", str(tmp_path / "bad"), *common])
        err = capsys.readouterr().err.strip()
        assert code == 1 and expected in err and "\n" not in err, (expected, err)
        assert err.startswith("crossling train-task: error: ")
    code = main(["evaluate", "--task-adapter", str(tmp_path / "none"), "--data", str(ner_files["dev"])])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err and "--lang" in err
    assert not (tmp_path / "bad").exists()


def test_cli_config_preset_is_not_overridden_by_option_defaults(en_pack, ner_files, tmp_path, capsys):
    from crossling.cli import main

    out = tmp_path / "preset"
    args = ["train-task", "--task", "ner", "--train", str(ner_files["train"]), "--pack", str(en_pack.path)]
    args += ["--out", str(out), "--config", "keung", "--adv-unlabelled", f"xx={ner_files['unlabelled_xx']}"]
    args += ["--budget", "smoke", "--max-steps", "2", "--lr", "3e-3", "--no-progress"]
    assert main(args) == 0
    meta = TaskAdapter.from_pretrained(out).config
    assert meta["task_adapter"]["adversarial"] == "keung" and meta["task_adapter"]["mode"] == "adapter"
    # Keung et al.'s NER ratio: generator at task / 100; discriminator 5e-4
    assert meta["adversarial"]["learning_rates"] == pytest.approx(
        {"task": 3e-3, "discriminator": 5e-4, "generator": 3e-5}
    )
