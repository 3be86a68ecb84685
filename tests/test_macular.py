"""Macular: code-switching, dictionaries, losses, aggregation, training, saving and the CLI (tiny models)."""

from __future__ import annotations

import pytest
import torch
from test_tasks_support import FAST, nli_records, write_nli

from crossling.codeswitch import (
    code_switch_records,
    induce_from_parallel,
    induce_from_vectors,
    read_dictionary,
    write_dictionary,
)
from crossling.config import TrainingConfig
from crossling.errors import ConfigError, CrosslingError, DataFormatError
from crossling.macular import MacularConfig, MacularModel, symmetric_kl, train_macular, uniform_target_loss
from crossling.testing import tiny_corpus

pytest_plugins = ["test_tasks_support"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")

EN = "the a cat dog house river tree small big red green walks runs sees eats water".split()
XX = "ka mu nyumba mto mti dogo kubwa ekundu kijani atembea akimbia aona ala maji mkate mama".split()


def paraphrase_records(n: int, seed: int = 0) -> list[dict]:
    """Toy paraphrase: label 1 when both sides are the same sentence."""
    sentences = tiny_corpus(2 * n, "en", seed=seed)
    out = []
    for i in range(n):
        a = " ".join(sentences[i].split()[:5])
        b = a if i % 2 else " ".join(sentences[n + i].split()[:5])
        out.append({"text_a": a, "text_b": b, "label": str(i % 2)})
    return out


# ---------------------------------------------------------------------- dictionaries and code-switching
def test_code_switching_replaces_about_the_ratio_and_is_seeded():
    dictionary = {"xx": dict(zip(EN, [[w] for w in XX], strict=True))}
    records = [{"text_a": s, "text_b": s, "label": "entailment"} for s in tiny_corpus(200, "en")]
    once, report = code_switch_records("nli", records, dictionary, ratio=0.3, seed=7)
    again, _ = code_switch_records("nli", records, dictionary, ratio=0.3, seed=7)
    other, _ = code_switch_records("nli", records, dictionary, ratio=0.3, seed=8)
    assert once == again and once != other
    fraction = report.switched / report.switchable
    assert report.switchable > 1000 and 0.26 < fraction < 0.34
    switchable_a = sum(w.strip(".").lower() in EN for r in records for w in r["text_a"].split())
    translated_a = sum(w.strip(".").lower() in XX for r in once for w in r["text_a"].split())
    assert 0.24 < translated_a / switchable_a < 0.36  # the replacements are dictionary words
    assert [r["label"] for r in once] == [r["label"] for r in records]
    info = report.to_dict()
    assert info["dictionary_sizes"] == {"xx": len(EN)} and len(info["dictionary_sample"]["xx"]) == 5
    none, report0 = code_switch_records("nli", records[:5], dictionary, ratio=0.0, seed=1)
    assert none == records[:5] and report0.switched == 0


def test_dictionary_file_round_trip_and_bad_line_names_file_and_line(tmp_path):
    path = write_dictionary({"cat": ["paka"], "dog": ["mbwa", "jibwa"]}, tmp_path / "en-xx.tsv")
    assert read_dictionary(path) == {"cat": ["paka"], "dog": ["mbwa", "jibwa"]}
    bad = tmp_path / "bad.tsv"
    bad.write_text("# comment\ncat\tpaka\n\ndog\tmbwa\textra\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad\.tsv:4: expected 'source<TAB>target'"):
        read_dictionary(bad)


def test_induced_dictionaries_recover_planted_pairs(tiny_xlmr_dir):
    generator = torch.Generator().manual_seed(0)
    source = torch.randn(len(EN), 6, generator=generator)
    rotation, _ = torch.linalg.qr(torch.randn(6, 6, generator=generator))
    target = source @ rotation + 0.01 * torch.randn(len(EN), 6, generator=generator)
    order = torch.randperm(len(EN), generator=generator)
    target_words = [XX[i] for i in order.tolist()]
    anchors = [(EN[i], XX[i]) for i in range(8)]
    induced = induce_from_vectors(EN, source, target_words, target[order], align_on=anchors)
    assert induced == {e: [x] for e, x in zip(EN, XX, strict=True)}
    # without the rotation the spaces are not aligned: far fewer pairs come out right
    unaligned = induce_from_vectors(EN, source, target_words, target[order])
    assert sum(unaligned.get(e) == [x] for e, x in zip(EN, XX, strict=True)) < len(EN) // 2
    # the same through two (already aligned) fastText token spaces of the embedding step
    from transformers import AutoTokenizer

    from crossling.codeswitch import induce_from_token_vectors
    from crossling.embeddings import TokenVectors

    tokenizer = AutoTokenizer.from_pretrained(tiny_xlmr_dir)
    vocab = tokenizer.get_vocab()
    pairs = [(e, x) for e, x in zip(EN, XX, strict=True) if "▁" + e in vocab and "▁" + x in vocab]
    assert len(pairs) >= 8
    vectors = torch.randn(len(pairs), 6, generator=generator)
    noisy = vectors + 0.01 * torch.randn(len(pairs), 6, generator=generator)
    spaces = [
        TokenVectors(ids=[vocab["▁" + e] for e, _ in pairs], vectors=vectors.numpy()),
        TokenVectors(ids=[vocab["▁" + x] for _, x in pairs], vectors=noisy.numpy()),
    ]
    induced = induce_from_token_vectors(spaces[0], tokenizer, spaces[1], tokenizer, align_on_identical=False)
    assert induced == {e: [x] for e, x in pairs if len(e) > 1 and len(x) > 1}
    # parallel text: word-for-word translations of toy sentences
    translate = dict(zip(EN, XX, strict=True))
    en = [" ".join(s.lower().rstrip(".").split()) for s in tiny_corpus(300, "en", seed=3)]
    en = [" ".join(w for w in s.split() if w in translate) for s in en]
    xx = [" ".join(translate[w] for w in reversed(s.split())) for s in en]
    parallel = induce_from_parallel(en, xx, max_sentence_frequency=0.9)
    assert parallel and all(parallel[w] == [translate[w]] for w in parallel)
    assert len(parallel) >= len(EN) - 2


# ---------------------------------------------------------------------- losses
def test_uniform_target_is_minimal_at_uniform_and_symmetric_kl():
    uniform = torch.zeros(4, 3)
    assert uniform_target_loss(uniform).item() == pytest.approx(torch.log(torch.tensor(3.0)).item())
    for _ in range(20):
        other = torch.randn(4, 3) * 3
        assert uniform_target_loss(other) > uniform_target_loss(uniform)
    logits = torch.zeros(2, 3, requires_grad=True)
    uniform_target_loss(logits).backward()
    assert torch.allclose(logits.grad, torch.zeros(2, 3), atol=1e-7)  # a stationary point
    p, q = torch.randn(5, 3), torch.randn(5, 3)
    assert symmetric_kl(p, q).item() == pytest.approx(symmetric_kl(q, p).item(), rel=1e-6)
    assert symmetric_kl(p, p).item() == pytest.approx(0.0, abs=1e-7) and symmetric_kl(p, q) > 0


def test_config_validation_and_presets():
    assert MacularConfig().target == "nli" and MacularConfig().similar == "paraphrase"
    assert MacularConfig.load("plain").code_switch is False
    with pytest.raises(ConfigError, match="not supported"):
        MacularConfig(tasks=("ner",))
    with pytest.raises(ConfigError, match="alpha"):
        MacularConfig(alpha=1.5)


# ---------------------------------------------------------------------- model
@pytest.fixture(scope="module")
def macular_model(en_pack):
    from crossling.tasks import build_pack_model

    packed = build_pack_model(en_pack)
    labels = {"nli": ["entailment", "neutral", "contradiction"], "paraphrase": ["0", "1"]}
    module = MacularModel(packed.model, packed.language, labels, MacularConfig(alpha=1.0), "nli_en")
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in packed.model.named_parameters():
            if "macular_" in name and "adapters" in name:
                param.normal_(0, 0.3)
    from crossling.tasks import collate, encode_pairs

    batch = collate(encode_pairs(packed.tokenizer, nli_records(4), None, 32).features, 1)
    return module, batch


def test_aggregation_alpha_one_equals_the_shared_path_and_merging_is_exact(macular_model):
    module, batch = macular_model
    module.model.eval()
    module.init_target_head()
    shared, _ = module.run(batch, "shared", "nli_en")
    aggregated, _ = module.run(batch, "aggregated", "nli_en")
    assert torch.allclose(shared, aggregated, atol=1e-6)
    module.config = MacularConfig(alpha=0.3)
    mixed, _ = module.run(batch, "aggregated", "nli_en")
    assert not torch.allclose(shared, mixed, atol=1e-4)
    module.merge_into("merged")
    from adapters.composition import Stack

    module.model.set_active_adapters(Stack(module.language, "merged"))
    merged = module.model(**batch, head="nli_en").logits
    assert torch.allclose(mixed, merged, atol=1e-5)


def test_merging_works_for_every_bottleneck_width(en_pack):
    """adapters sizes a bottleneck as int(hidden // factor): with hidden / width as the factor a width
    of 20 on a 32-wide model (reduction factor 3) came out 19 and the merge failed after training."""
    from adapters.composition import Stack

    from crossling.tasks import build_pack_model, collate, encode_pairs

    packed = build_pack_model(en_pack)
    assert packed.model.config.hidden_size == 32
    labels = {"nli": ["entailment", "neutral", "contradiction"], "paraphrase": ["0", "1"]}
    config = MacularConfig(alpha=0.3, reduction_factor=3)
    module = MacularModel(packed.model, packed.language, labels, config, "nli_en")
    module.model.eval()
    module.init_target_head()
    batch = collate(encode_pairs(packed.tokenizer, nli_records(4), None, 32).features, 1)
    mixed, _ = module.run(batch, "aggregated", "nli_en")
    assert module.merge_into("merged") == 2 * (32 // 3)
    module.model.set_active_adapters(Stack(module.language, "merged"))
    assert torch.allclose(mixed, module.model(**batch, head="nli_en").logits, atol=1e-5)


# ---------------------------------------------------------------------- training, saving, CLI
@pytest.fixture(scope="module")
def macular_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("macular-data")
    dictionary = write_dictionary(dict(zip(EN, [[w] for w in XX], strict=True)), d / "en-xx.tsv")
    return {
        "nli": write_nli(d / "nli.tsv", nli_records(64)),
        "paraphrase": write_nli(d / "pawsx.tsv", paraphrase_records(48)),
        "dev": write_nli(d / "dev.tsv", nli_records(24, seed=1)),
        "dict": dictionary,
    }


def test_the_task_consistency_target_is_computed_without_dropout(
    en_pack, macular_files, tmp_path, monkeypatch
):
    calls = []
    real = MacularModel.run

    def spy(self, encoded, setup, head):
        calls.append((setup, head, self.model.training))
        return real(self, encoded, setup, head)

    monkeypatch.setattr(MacularModel, "run", spy)
    train_macular(
        {"nli": macular_files["nli"], "paraphrase": macular_files["paraphrase"]},
        tmp_path / "macular",
        dictionaries={"xx": macular_files["dict"]},
        pack=en_pack,
        config={"multitask_steps": 2},
        training=FAST.replace(max_steps=4),
    )
    stage2 = calls[next(i for i, c in enumerate(calls) if c[0] == "aggregated") :]
    # stage 2 runs the shared path only for the similar task's target: in eval mode
    assert [c for c in stage2 if c[0] == "shared"] and all(not c[2] for c in stage2 if c[0] == "shared")
    assert all(c[2] for c in stage2 if c[0] == "aggregated")  # the trained side keeps its dropout


def test_training_lowers_the_task_loss_and_the_saved_result_loads_and_predicts(
    en_pack, macular_files, tmp_path
):
    from crossling.tasks import load_task_model

    training = FAST.replace(max_steps=24, learning_rate=1e-2)
    adapter, module = train_macular(
        {"nli": macular_files["nli"], "paraphrase": macular_files["paraphrase"]},
        tmp_path / "macular",
        dictionaries={"xx": macular_files["dict"]},
        pack=en_pack,
        dev=macular_files["dev"],
        config={"multitask_steps": 12},
        training=training,
        return_model=True,
    )
    report = adapter.config["macular"]
    first, last = report["stage1"]["history"][:3], report["stage2"]["history"][-3:]
    assert sum(h["ce"] for h in last) < 0.75 * sum(h["ce_nli"] for h in first)  # the target task's CE
    assert {"kl", "lang_adv", "task_consistency"} <= set(report["stage2"]["history"][0])
    assert {"task_adv", "task_disc_acc"} <= set(report["stage1"]["history"][0])
    assert report["code_switch"]["switched_words"] > 0 and report["code_switch"]["dictionary_sizes"]["xx"]
    loaded = load_task_model(adapter.path, en_pack)
    records = nli_records(10, seed=2)
    prediction = loaded.predict(records)
    assert len(prediction.labels) == 10 and set(prediction.labels) <= set(adapter.labels)
    # the saved single adapter predicts what the trained two-adapter model predicts
    module.model.set_active_adapters(module.setup("aggregated"))
    from crossling.tasks import collate, encode_pairs

    batch = collate(encode_pairs(loaded.tokenizer, records, None, 64).features, loaded.tokenizer.pad_token_id)
    module.model.eval()
    with torch.no_grad():
        expected = module.model(**batch, head=adapter.config["adapter_name"]).logits
    assert torch.allclose(loaded.logits(batch), expected, atol=1e-4)
    assert 0.0 <= adapter.eval_results["dev"]["accuracy"] <= 1.0
    from crossling.multisource import MultiSourcePredictor

    predictor = MultiSourcePredictor.from_pretrained(en_pack, [adapter.path], weights={"en": 1.0})
    assert torch.allclose(predictor.logits(batch), expected, atol=1e-4)


def test_bf16_reaches_both_stages_and_the_adapter_stays_fp32(en_pack, macular_files, tmp_path):
    from test_precision import linear_output_dtypes

    with linear_output_dtypes() as seen:
        adapter, module = train_macular(
            {"nli": macular_files["nli"], "paraphrase": macular_files["paraphrase"]},
            tmp_path / "bf16",
            dictionaries={"xx": macular_files["dict"]},
            pack=en_pack,
            config={"multitask_steps": 2},
            training=FAST.replace(max_steps=2, precision="bf16"),
            return_model=True,
        )
    # the encoder and task heads under autocast (bf16); the discriminators read fp32 features
    assert seen == {torch.bfloat16, torch.float32}
    history = adapter.config["macular"]["stage1"]["history"] + adapter.config["macular"]["stage2"]["history"]
    assert len(history) == 4 and all(torch.isfinite(torch.tensor(h["loss"])) for h in history)
    assert {p.dtype for p in module.parameters()} == {torch.float32}


def test_cli_end_to_end_and_bad_input_is_one_line(en_pack, macular_files, tmp_path, capsys):
    from crossling.cli import main

    out = tmp_path / "cli-macular"
    argv = [
        "macular",
        "--tasks",
        "nli,paraphrase",
        "--train",
        f"nli={macular_files['nli']}",
        f"paraphrase={macular_files['paraphrase']}",
        "--dict",
        f"xx={macular_files['dict']}",
        "--pack",
        str(en_pack.path),
        "--out",
        str(out),
        "--budget",
        "smoke",
        "--max-steps",
        "3",
        "--multitask-steps",
        "2",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "wrote" in printed and "dictionary" in printed
    assert main(["evaluate", "--task-adapter", str(out), "--data", f"en={macular_files['dev']}"]) == 0
    capsys.readouterr()
    bad = tmp_path / "bad.tsv"
    bad.write_text("cat\tpaka\nbroken line with no tab but many words\n", encoding="utf-8")
    bad_argv = [*argv[:6], "--dict", f"xx={bad}", *argv[8:]]
    assert main(bad_argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{bad}:2" in err
    assert main([*argv[:4], f"nli={macular_files['nli']}", *argv[6:]]) == 1
    assert "missing: paraphrase" in capsys.readouterr().err


def test_missing_dictionary_is_a_clear_error(en_pack, macular_files, tmp_path):
    with pytest.raises(CrosslingError, match="needs bilingual dictionaries"):
        train_macular(
            {"nli": macular_files["nli"], "paraphrase": macular_files["paraphrase"]},
            tmp_path / "x",
            pack=en_pack,
            training=TrainingConfig(max_steps=1),
        )
