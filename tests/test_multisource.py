"""Harmony weights and the multi-source predictor (UniBridge 2.4) on tiny random packs and adapters."""

import dataclasses
import json
import logging
import math
import typing

import pytest
import torch
from test_tasks_support import make_pack

from crossling.artifacts import TaskAdapter
from crossling.cli import main
from crossling.config import HarmonyConfig
from crossling.errors import ArtifactError, ConfigError, DataFormatError
from crossling.multisource import (
    STRATEGIES,
    HarmonyWeights,
    MultiSourcePredictor,
    collect_parallel,
    combination_weights,
    compute_harmony,
    harmony_weights,
)
from crossling.tasks import build_pack_model, collate, encode_records, load_task_model
from crossling.tasks.model import add_head, task_adapter_config
from crossling.testing import tiny_corpus

# shared fixtures (tiny base model, packs)
pytest_plugins = ["test_tasks_support"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")

NER = ["O", "B-LOC", "B-PER"]
NLI = ["entailment", "neutral", "contradiction"]
SENTENCES = tiny_corpus(12, "xx", seed=11)
WORDS = [s.rstrip(".").split() + ["."] for s in tiny_corpus(7, "xx", seed=12)]


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def packs(task_base_dir, tmp_path_factory):
    """gn is the target; es is built exactly like gn (same weights), en and ru differ."""
    root = tmp_path_factory.mktemp("ms-packs")
    out = {}
    for language, seed in (("gn", 0), ("es", 0), ("en", 1), ("ru", 2)):
        torch.manual_seed(seed)
        out[language] = make_pack(task_base_dir, root / language, language, seed=seed)
    return out


def save_task_adapter(pack, out, source, task, labels, seed):
    """A task adapter + head with random (non-zero) weights, saved as a TaskAdapter of `source`."""
    torch.manual_seed(seed)
    packed = build_pack_model(pack)
    name = f"task_{source}"
    packed.model.add_adapter(name, config=task_adapter_config(16))
    add_head(packed.model, name, task, labels)
    with torch.no_grad():
        for n, p in packed.model.named_parameters():
            if f".{name}." in n:
                p.add_(0.3 * torch.randn_like(p))
    adapter = TaskAdapter(
        task=task,
        labels=labels,
        source_language=source,
        base=packed.base_identity,
        language_pack=str(pack.path),
        config={"mode": "adapter", "adapter_name": name, "training": {"max_length": 64}},
    )
    adapter.save_pretrained(
        out,
        write_adapter=lambda d: packed.model.save_adapter(str(d), name, with_head=True, use_safetensors=True),
    )
    return adapter


@pytest.fixture(scope="module")
def ner_adapters(packs, tmp_path_factory):
    root = tmp_path_factory.mktemp("ms-ner")
    # es lists its labels in another order: the predictor must line the columns up by name
    orders = {"en": NER, "es": ["B-PER", "O", "B-LOC"], "ru": NER}
    return {
        lang: save_task_adapter(packs[lang], root / lang, lang, "ner", labels, seed)
        for seed, (lang, labels) in enumerate(orders.items())
    }


@pytest.fixture(scope="module")
def nli_adapters(packs, tmp_path_factory):
    root = tmp_path_factory.mktemp("ms-nli")
    return {
        lang: save_task_adapter(packs[lang], root / lang, lang, "nli", NLI, 10 + i)
        for i, lang in enumerate(("en", "es"))
    }


def parallel_lists():
    return {"gn": SENTENCES, "es": SENTENCES, "en": tiny_corpus(12, "en", seed=11), "ru": SENTENCES}


def one_by_one(adapter, pack, batch, labels):
    """One adapter's logits alone (its own TaskModel), columns in `labels` order."""
    logits = load_task_model(adapter.path, pack).logits(batch)
    return logits[..., [adapter.label2id[label] for label in labels]]


def tagging_batch(tokenizer, words):
    records = [{"tokens": w} for w in words]
    return collate(encode_records("ner", tokenizer, records, None, 64).features, tokenizer.pad_token_id)


# ---------------------------------------------------------------------- the pure function
def test_harmony_weights_from_states():
    torch.manual_seed(0)
    target = torch.randn(10, 16)
    sources = {
        "near": target + 0.1 * torch.randn(10, 16),
        "mid": target + 0.5 * torch.randn(10, 16),
        "far": target + 2.0 * torch.randn(10, 16),
    }
    weights, report = harmony_weights(target, sources)
    assert math.isclose(sum(weights.values()), 1.0, abs_tol=1e-12)
    assert weights["near"] > weights["mid"] > weights["far"]
    expected = torch.softmax(
        torch.tensor(
            [1 / (target - s).norm(dim=-1).mean().item() for s in sources.values()], dtype=torch.float64
        ),
        0,
    )
    assert torch.allclose(torch.tensor(list(weights.values()), dtype=torch.float64), expected)
    assert report["nearest"] == "near" and report["num_sentences"] == {"near": 10, "mid": 10, "far": 10}

    # a lower temperature sharpens; the informative temperature gives exactly the 2x ratio
    sharp, _ = harmony_weights(target, sources, temperature=0.1)
    assert sharp["near"] > weights["near"]
    at_tau, r = harmony_weights(target, sources, temperature=report["informative_temperature"])
    assert math.isclose(at_tau["near"] / at_tau["far"], 2.0, rel_tol=1e-9) and not r["nearly_uniform"]

    # an identical source takes the largest weight (all of it: its distance is 0)
    same, _ = harmony_weights(target, {**sources, "same": target.clone()})
    assert same["same"] == max(same.values()) == 1.0

    # a given weight is kept, the softmax shares the rest
    fixed, _ = harmony_weights(target, sources, given={"other": 0.4})
    assert fixed["other"] == 0.4 and math.isclose(sum(fixed.values()), 1.0)
    assert math.isclose(fixed["near"], 0.6 * weights["near"])

    with pytest.raises(ConfigError, match="source 'near'.*same shape"):
        harmony_weights(target, {"near": target[:5]})
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        harmony_weights(target, sources, temperature=0.0)


def test_strategies_match_the_config():
    assert typing.get_args(typing.get_type_hints(HarmonyConfig)["strategy"]) == STRATEGIES
    sources = ["en", "es", "ru"]
    harmony = {"en": 0.2, "es": 0.5, "ru": 0.3, "zh": 0.4}
    weights, report = combination_weights("harmony", sources, harmony=harmony)
    assert math.isclose(weights["es"], 0.5 / 1.0) and report["strategy"] == "harmony"
    assert combination_weights("uniform", sources)[0] == {s: 1 / 3 for s in sources}
    assert combination_weights("best", sources, harmony=harmony)[0] == {"en": 0.0, "es": 1.0, "ru": 0.0}
    assert combination_weights("english", sources)[0] == {"en": 1.0, "es": 0.0, "ru": 0.0}
    assert combination_weights("given", sources, given={"en": 2, "es": 2})[0] == {
        "en": 0.5,
        "es": 0.5,
        "ru": 0.0,
    }
    with pytest.raises(ConfigError, match="needs harmony weights"):
        combination_weights("harmony", sources)
    with pytest.raises(ConfigError, match="source language is 'en'"):
        combination_weights("english", ["es", "ru"])
    with pytest.raises(ConfigError, match=r"\['zh'\] that no task adapter has"):
        combination_weights("given", sources, given={"zh": 1.0})


def test_collect_parallel_from_tables_and_files(tmp_path):
    columns = (
        "id language xnli_dev_row label premise hypothesis premise_en hypothesis_en premise_es hypothesis_es"
    )
    header = "\t".join(columns.split())
    rows = [
        ("12451", "gn", "1", "neutral", "P1", "H1", "p1", "h1", "q1", "k1"),
        ("12452", "gn", "2", "entailment", "P1", "H2", "p1", "h2", "q1", "k2"),
        ("12453", "aym", "3", "neutral", "A3", "B3", "p3", "h3", "q3", "k3"),
    ]
    table = tmp_path / "dev_aligned.tsv"
    table.write_text(header + "\n" + "\n".join("\t".join(r) for r in rows) + "\n", encoding="utf-8")
    found, missing = collect_parallel(table, "gn", ["en", "es", "ru"], 10)
    assert missing == ["ru"]
    assert found["en"].target == ["P1", "H1", "H2"] and found["en"].source == ["p1", "h1", "h2"]
    assert found["es"].origin["ids"] == ["12451", "12451", "12452"]
    assert collect_parallel(table, "gn", ["en"], 2)[0]["en"].target == ["P1", "H1"]
    with pytest.raises(DataFormatError, match="no rows for target 'quy'; languages: aym, gn"):
        collect_parallel(table, "quy", ["en"], 2)

    by_language = tmp_path / "columns.tsv"
    by_language.write_text("gn\ten\nx1\ty1\n\ty2\nx3\ty3\n", encoding="utf-8")
    found, missing = collect_parallel(by_language, "gn", ["en"], 5)
    assert found["en"].source == ["y1", "y3"] and found["en"].origin["lines"] == [2, 4]

    (tmp_path / "gn.txt").write_text("a\n\nc\n", encoding="utf-8")
    (tmp_path / "en.txt").write_text("A\nB\nC\n", encoding="utf-8")
    files = {"gn": tmp_path / "gn.txt", "en": tmp_path / "en.txt"}
    found, _ = collect_parallel(files, "gn", ["en"], 5)
    assert found["en"].target == ["a", "c"] and found["en"].origin["lines"] == [1, 3]
    (tmp_path / "es.txt").write_text("A\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="not line-aligned"):
        collect_parallel({**files, "es": tmp_path / "es.txt"}, "gn", ["es"], 5)
    with pytest.raises(ConfigError, match="no parallel sentences for target 'gn'"):
        collect_parallel({"en": ["x"]}, "gn", ["en"], 5)


# ---------------------------------------------------------------------- weights from packs
def test_harmony_from_packs_identical_source_largest(packs, tmp_path, caplog):
    sources = [packs["en"], packs["es"], packs["ru"]]
    weights = compute_harmony(packs["gn"], sources, parallel_lists(), num_parallel=8)
    gn = weights.for_target("gn")
    assert math.isclose(sum(gn.values()), 1.0, abs_tol=1e-9)
    assert gn["es"] == max(gn.values()) and weights.targets["gn"]["distances"]["es"] == 0.0
    assert weights.targets["gn"]["report"]["num_sentences"] == {"en": 8, "es": 8, "ru": 8}

    # without the identical source: a real softmax, and the JSON round trip keeps everything
    weights = compute_harmony(packs["gn"], [packs["en"], packs["ru"]], parallel_lists(), temperature=0.5)
    gn = weights.for_target()
    assert 0 < gn["en"] < 1 and math.isclose(sum(gn.values()), 1.0)
    path = weights.save_pretrained(tmp_path)
    loaded = HarmonyWeights.from_pretrained(path)
    assert loaded.for_target("gn") == gn and loaded.temperature == 0.5
    assert loaded.with_temperature(0.5).for_target("gn") == pytest.approx(gn)
    assert "| gn |" in loaded.table() and "<svg" in loaded.heatmap_svg()

    # a source without parallel sentences: excluded with a warning, or kept with a given weight
    lists = parallel_lists()
    del lists["ru"]
    with caplog.at_level(logging.WARNING, logger="crossling.multisource"):
        weights = compute_harmony(packs["gn"], sources, lists)
    assert "ru" not in weights.for_target() and weights.targets["gn"]["excluded"] == ["ru"]
    assert "no parallel sentences for source(s) ru" in caplog.text
    weights = compute_harmony(packs["gn"], sources, lists, given={"ru": 0.25})
    assert weights.for_target()["ru"] == 0.25 and math.isclose(sum(weights.for_target().values()), 1.0)


# ---------------------------------------------------------------------- the predictor
def test_combined_logits_are_the_weighted_sum_of_each_adapter_alone(packs, ner_adapters):
    given = {"en": 0.5, "es": 0.3, "ru": 0.2}
    predictor = MultiSourcePredictor.from_pretrained(
        packs["gn"], [a.path for a in ner_adapters.values()], weights=given
    )
    assert (
        predictor.strategy == "given" and predictor.labels == NER and predictor.sources == ["en", "es", "ru"]
    )
    batch = tagging_batch(predictor.tokenizer, WORDS)
    per_source = predictor.source_logits(batch)
    expected = torch.zeros_like(per_source[0])
    for i, (lang, adapter) in enumerate(ner_adapters.items()):
        alone = one_by_one(adapter, packs["gn"], batch, NER)
        assert torch.allclose(per_source[i], alone, atol=1e-5)
        expected += given[lang] * alone
    assert torch.allclose(predictor.logits(batch), expected, atol=1e-5)
    assert not torch.allclose(per_source[0], per_source[1])


def test_harmony_and_single_source_strategies(packs, ner_adapters, tmp_path, caplog):
    paths = [a.path for a in ner_adapters.values()]
    harmony = compute_harmony(packs["gn"], [packs["en"], packs["ru"], packs["es"]], parallel_lists())
    harmony.save_pretrained(tmp_path / "h.json")
    predictor = MultiSourcePredictor.from_pretrained(packs["gn"], paths, weights=tmp_path / "h.json")
    assert predictor.strategy == "harmony" and predictor.weights == harmony.for_target("gn")
    assert predictor.sources == ["es"]  # distance 0: all the weight, and the others are not run

    # --temperature with a weights file re-weights its stored distances
    two = compute_harmony(packs["gn"], [packs["en"], packs["ru"]], parallel_lists())
    two.save_pretrained(tmp_path / "two.json")
    sharp = MultiSourcePredictor.from_pretrained(
        packs["gn"],
        [ner_adapters["en"].path, ner_adapters["ru"].path],
        weights=tmp_path / "two.json",
        temperature=0.01,
    )
    assert sharp.weights == pytest.approx(two.with_temperature(0.01).for_target())
    assert max(sharp.weights.values()) > max(two.for_target().values())

    # ... and so does a config's temperature (one that sets none keeps the file's)
    from_config = MultiSourcePredictor.from_pretrained(
        packs["gn"], sharp.all_adapters, weights=tmp_path / "two.json", config={"temperature": 0.01}
    )
    assert from_config.weights == pytest.approx(sharp.weights)
    kept = MultiSourcePredictor.from_pretrained(
        packs["gn"], sharp.all_adapters, weights=tmp_path / "two.json", config={"strategy": "harmony"}
    )
    assert kept.weights == pytest.approx(two.for_target())
    # a weights file made at tau 0.01 stays at 0.01 under a config YAML that sets no tau
    two.with_temperature(0.01).save_pretrained(tmp_path / "sharp.json")
    (tmp_path / "h.yaml").write_text("num_parallel: 4\n", encoding="utf-8")
    kept = MultiSourcePredictor.from_pretrained(
        packs["gn"], sharp.all_adapters, weights=tmp_path / "sharp.json", config=tmp_path / "h.yaml"
    )
    assert kept.weights == pytest.approx(sharp.weights)

    # computed on the fly from parallel sentences with the adapters' own training packs
    computed = MultiSourcePredictor.from_pretrained(packs["gn"], paths, parallel=parallel_lists())
    assert computed.weights == pytest.approx(harmony.for_target("gn"))
    # at the temperature asked for (en and ru: neither is at distance 0, so tau matters)
    computed = MultiSourcePredictor.from_pretrained(
        packs["gn"], sharp.all_adapters, parallel=parallel_lists(), temperature=0.01
    )
    assert computed.weights == pytest.approx(sharp.weights)
    # {source: weight} with strategy harmony fixes those sources; the rest share what is left
    fixed = MultiSourcePredictor.from_pretrained(
        packs["gn"], sharp.all_adapters, parallel=parallel_lists(), weights={"ru": 0.25}, strategy="harmony"
    )
    assert fixed.weights == pytest.approx({"en": 0.75, "ru": 0.25})
    # what a strategy would not use is an error, not silently dropped
    for kwargs, message in (
        ({"weights": {"ru": 0.25}, "parallel": parallel_lists()}, "parallel sentences would be unused"),
        ({"weights": {"ru": 0.25}, "strategy": "best"}, "only fill in sources without them"),
    ):
        with pytest.raises(ConfigError, match=message):
            MultiSourcePredictor.from_pretrained(packs["gn"], sharp.all_adapters, **kwargs)
    # ... or a warning where the strategy itself says so (an ablation added to a harmony command)
    with caplog.at_level("WARNING", logger="crossling.multisource"):
        uniform = MultiSourcePredictor.from_pretrained(
            packs["gn"], sharp.all_adapters, weights=tmp_path / "two.json", strategy="uniform"
        )
    assert uniform.weights == {"en": 0.5, "ru": 0.5} and "uses no weights: they are ignored" in caplog.text

    batch = tagging_batch(predictor.tokenizer, WORDS[:3])
    english = MultiSourcePredictor.from_pretrained(packs["gn"], paths, strategy="english")
    assert english.sources == ["en"]
    assert torch.allclose(
        english.logits(batch), one_by_one(ner_adapters["en"], packs["gn"], batch, NER), atol=1e-5
    )
    uniform = MultiSourcePredictor.from_pretrained(packs["gn"], paths, strategy="uniform")
    assert uniform.weights == pytest.approx({"en": 1 / 3, "es": 1 / 3, "ru": 1 / 3})

    with pytest.raises(ConfigError, match="needs harmony weights"):
        MultiSourcePredictor.from_pretrained(packs["gn"], paths)
    with pytest.raises(ConfigError, match="no harmony weights for target 'xx'"):
        HarmonyWeights.from_pretrained(tmp_path / "h.json").for_target("xx")


def test_batches_equal_one_by_one(packs, ner_adapters, nli_adapters):
    ner = MultiSourcePredictor.from_pretrained(packs["gn"], list(ner_adapters.values()), strategy="uniform")
    together = ner.predict_tokens(WORDS, batch_size=3)
    assert [len(tags) for tags in together.labels] == [len(w) for w in WORDS]
    for i, words in enumerate(WORDS):
        alone = ner.predict_tokens([words])
        assert alone.labels[0] == together.labels[i]
        assert torch.allclose(
            torch.tensor(alone.probabilities[0]), torch.tensor(together.probabilities[i]), atol=1e-5
        )
    assert ner.predict([" ".join(w) for w in WORDS]).labels == together.labels

    nli = MultiSourcePredictor.from_pretrained(
        packs["gn"], list(nli_adapters.values()), weights={"en": 0.7, "es": 0.3}
    )
    premises, hypotheses = SENTENCES[:6], SENTENCES[6:12]
    together = nli.predict_pairs(premises, hypotheses, batch_size=4)
    assert all(math.isclose(sum(p), 1.0, rel_tol=1e-5) for p in together.probabilities)
    for i in range(6):
        alone = nli.predict_pairs([premises[i]], [hypotheses[i]])
        assert alone.labels[0] == together.labels[i]
        assert torch.allclose(
            torch.tensor(alone.probabilities[0]), torch.tensor(together.probabilities[i]), atol=1e-5
        )
    with pytest.raises(ConfigError, match="classifies sentence pairs"):
        nli.predict(["just one sentence"])


def test_inputs_longer_than_the_model_are_truncated_not_fatal(packs, ner_adapters):
    predictor = MultiSourcePredictor.from_pretrained(
        packs["gn"], list(ner_adapters.values()), strategy="uniform", max_length=4096
    )
    long_sentence = " ".join(SENTENCES * 20)  # far more tokens than the tiny model's positions
    assert predictor.max_length <= 128
    assert len(predictor.predict([long_sentence]).labels) == 1


def test_mismatched_label_maps_name_the_labels(packs, ner_adapters, tmp_path):
    other = save_task_adapter(packs["ru"], tmp_path / "misc", "ru", "ner", ["O", "B-LOC", "B-MISC"], 7)
    with pytest.raises(
        ArtifactError, match=r"only in the first: \['B-PER'\]; only in the second: \['B-MISC'\]"
    ):
        MultiSourcePredictor.from_pretrained(
            packs["gn"], [ner_adapters["en"].path, other.path], strategy="uniform"
        )
    with pytest.raises(ConfigError, match="several task adapters for source language"):
        MultiSourcePredictor.from_pretrained(packs["gn"], [ner_adapters["en"].path] * 2, strategy="uniform")


# ---------------------------------------------------------------------- command line
def test_cli_harmony_then_predict(packs, ner_adapters, nli_adapters, tmp_path, capsys):
    files = {}
    for lang, sentences in parallel_lists().items():
        files[lang] = tmp_path / f"{lang}.txt"
        files[lang].write_text("\n".join(sentences) + "\n", encoding="utf-8")
    out = tmp_path / "harmony.json"
    argv = ["harmony", "--target", str(packs["gn"].path), str(packs["ru"].path), "--sources"]
    argv += [str(packs[lang].path) for lang in ("en", "es")]
    argv += ["--parallel", *(f"{lang}={path}" for lang, path in files.items()), "--num-parallel", "5"]
    argv += ["--temperature", "0.1", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| gn |" in printed and "| ru |" in printed and f"wrote {out}" in printed
    saved = json.loads(out.read_text(encoding="utf-8"))
    assert saved["format"] == "crossling.HarmonyWeights" and saved["temperature"] == 0.1
    assert saved["targets"]["gn"]["parallel"]["en"]["lines"] == [1, 2, 3, 4, 5]
    assert out.with_suffix(".svg").read_text(encoding="utf-8").startswith("<svg")  # several targets: a plot

    tags_in = tmp_path / "in.tsv"
    tags_in.write_text(
        "\n\n".join("\n".join(f"{w}\t{'O'}" for w in words) for words in WORDS) + "\n", encoding="utf-8"
    )
    tags_out = tmp_path / "tags.tsv"
    argv = ["predict", "--pack", str(packs["gn"].path), "--task-adapters"]
    argv += [str(a.path) for a in ner_adapters.values()]
    argv += ["--weights", str(out), "--input", str(tags_in), "--out", str(tags_out), "--no-progress"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "strategy harmony" in err and "f1 against the input's labels" in err
    blocks = tags_out.read_text(encoding="utf-8").strip().split("\n\n")
    assert [len(b.splitlines()) for b in blocks] == [len(w) for w in WORDS]
    assert all(line.split("\t")[1] in NER for b in blocks for line in b.splitlines())
    # the same words unlabelled, one a line: read as sentences (tagged the same), not one-word lines
    words_in = tmp_path / "words.txt"
    words_in.write_text("\n\n".join("\n".join(words) for words in WORDS) + "\n", encoding="utf-8")
    argv[argv.index(str(tags_in))] = str(words_in)
    argv[argv.index(str(tags_out))] = str(tmp_path / "words.tsv")
    argv += ["--device", "cpu"]
    assert main(argv) == 0
    assert (tmp_path / "words.tsv").read_text(encoding="utf-8") == tags_out.read_text(encoding="utf-8")
    assert "against the input's labels" not in capsys.readouterr().err
    # the same in Latin-1, with --encoding
    latin1_in = tmp_path / "words-latin1.txt"
    latin1_in.write_bytes(words_in.read_text(encoding="utf-8").encode("latin-1"))
    argv[argv.index(str(words_in))] = str(latin1_in)
    assert main([*argv, "--encoding", "latin-1"]) == 0
    argv[argv.index(str(latin1_in))] = str(words_in)
    capsys.readouterr()
    # gold labels no adapter knows: predictions, but no misleading score
    misc_in = tmp_path / "misc.tsv"
    misc_in.write_text(
        tags_in.read_text(encoding="utf-8").replace("\tO\n", "\tB-MISC\n", 1), encoding="utf-8"
    )
    argv[argv.index(str(words_in))] = str(misc_in)
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "not scored: the input's labels B-MISC are not among" in err and "f1 against" not in err

    pairs_in = tmp_path / "pairs.tsv"
    pairs_in.write_text(
        "".join(f"{a}\t{b}\n" for a, b in zip(SENTENCES[:5], SENTENCES[5:10], strict=True)), encoding="utf-8"
    )
    pairs_out = tmp_path / "pairs.jsonl"
    argv = ["predict", "--pack", str(packs["gn"].path), "--task-adapters"]
    argv += [str(a.path) for a in nli_adapters.values()]
    argv += ["--weights", "en=1", "es=3", "--input", str(pairs_in), "--out", str(pairs_out)]
    argv += ["--output-format", "jsonl", "--no-progress", "--batch-size", "2", "--chunk-size", "3"]
    assert main(argv) == 0
    lines = [json.loads(line) for line in pairs_out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 5 and all(line["label"] in NLI for line in lines)
    assert "es=0.750" in capsys.readouterr().err

    # bad input: one line, no traceback
    bad = argv.copy()
    bad[bad.index(str(pairs_in))] = str(tmp_path / "missing.tsv")
    assert main(bad) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing.tsv: no such file" in err
    argv = ["predict", "--pack", str(packs["gn"].path), "--task-adapters", str(nli_adapters["es"].path)]
    argv += ["--strategy", "english", "--input", str(pairs_in)]
    assert main(argv) == 1
    assert "source language is 'en'" in capsys.readouterr().err


def test_predictors_sharing_a_loaded_model_each_run_their_own_adapters(packs, ner_adapters, nli_adapters):
    """A second predictor on the same loaded model must not reuse the first one's adapter of the same
    source language (the adapters' names in the model are per index and language)."""
    packed = build_pack_model(packs["gn"])
    batch = tagging_batch(packed.tokenizer, WORDS[:3])
    english = MultiSourcePredictor(packed, [ner_adapters["en"]], {"en": 1.0}, strategy="given")
    first = english.logits(batch)
    # another adapter labelled "en" (the Russian one's weights): its own logits, not the first one's
    other = dataclasses.replace(ner_adapters["ru"], source_language="en")
    second = MultiSourcePredictor(packed, [other], {"en": 1.0}, strategy="given")
    assert torch.allclose(
        second.logits(batch), one_by_one(ner_adapters["ru"], packs["gn"], batch, NER), atol=1e-5
    )
    assert not torch.allclose(second.logits(batch), first, atol=1e-3)
    assert torch.allclose(english.logits(batch), first)  # ... and the first still runs its own
    # the same adapter object again reuses what is attached
    again = MultiSourcePredictor(packed, [other], {"en": 1.0}, strategy="given")
    assert torch.allclose(again.logits(batch), second.logits(batch))
    # a pair task after a tagging task on the same model: its own head
    nli = MultiSourcePredictor(packed, [nli_adapters["en"]], {"en": 1.0}, strategy="given")
    assert nli.predict_records([{"text_a": "a b", "text_b": "c"}]).labels[0] in NLI


def test_harmony_is_computed_on_the_device_the_predictor_runs_on(packs, ner_adapters, monkeypatch):
    import crossling.multisource as ms

    class Seen(Exception):
        pass

    def spy(*args, loaded=None, device=None, **kwargs):
        (packed,) = loaded.values()
        raise Seen(next(packed.model.parameters()).device, device)

    monkeypatch.setattr(ms, "compute_harmony", spy)
    # "meta" stands in for a GPU: the loaded target model must be there before its batches are
    with pytest.raises(Seen) as seen:
        MultiSourcePredictor.from_pretrained(
            packs["gn"],
            [ner_adapters["en"].path, ner_adapters["ru"].path],
            parallel=parallel_lists(),
            device="meta",
        )
    assert seen.value.args == (torch.device("meta"), "meta")
