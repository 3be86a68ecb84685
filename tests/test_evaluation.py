import json

import pytest
import torch
from test_tasks_support import FAST, ner_records, nli_records, write_xtreme

from crossling.data import UPOS_TAGS
from crossling.errors import CrosslingError, DataFormatError
from crossling.eval import (
    accuracy,
    analyze_alignment,
    cosine_summary,
    entity_f1,
    evaluate,
    read_xnli_parallel,
    token_accuracy,
)
from crossling.eval.alignment import derangement
from crossling.tasks import train_task

# shared fixtures (tiny packs, toy data, a trained NER adapter)
pytest_plugins = ["test_tasks_support"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_seqeval_entity_f1_on_hand_made_examples():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
    # entities: gold {PER, LOC, ORG}; predicted {PER, ORG(wrong span type), ORG}: 2 right of 3 each way
    scores = entity_f1(gold, pred)
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)
    assert scores["per_type"]["LOC"]["f1"] == 0.0 and scores["per_type"]["PER"]["f1"] == 1.0
    # a partial span is wrong: B-PER I-PER vs B-PER O
    assert entity_f1([["B-PER", "I-PER"]], [["B-PER", "O"]])["f1"] == 0.0
    # default (conlleval) mode: an I- after O starts an entity
    assert entity_f1([["O", "B-PER"]], [["O", "I-PER"]])["f1"] == 1.0


def test_accuracies():
    assert token_accuracy([["NOUN", "VERB"], ["DET"]], [["NOUN", "NOUN"], ["DET"]])[
        "accuracy"
    ] == pytest.approx(2 / 3)
    assert accuracy(["entailment", "neutral"], ["entailment", "contradiction"])["accuracy"] == 0.5


def test_evaluate_writes_per_language_tables(trained_ner, en_pack, ner_files, tmp_path):
    adapter, model = trained_ner
    report = evaluate(adapter.path, {"en": ner_files["dev"], "xx": ner_files["dev_xx"]}, pack=en_pack)
    assert list(report.results) == ["en", "xx"] and report.metric == "f1"
    assert report.results["en"]["examples"] == 40
    # the same numbers as scoring the in-memory model by hand
    records = ner_records(40, "en", 2)
    by_hand = entity_f1([r["tags"] for r in records], model.predict(records).labels)
    assert report.results["en"]["f1"] == pytest.approx(by_hand["f1"])
    json_path, md_path = report.save(tmp_path / "ner")
    assert json.loads(json_path.read_text())["results"]["xx"]["truncation"]["truncated"] == 0
    assert "| en |" in md_path.read_text() and "| average |" in md_path.read_text()


def test_evaluate_refuses_tags_missing_from_the_label_map(trained_ner, en_pack, tmp_path):
    adapter, _ = trained_ner
    records = ner_records(5, "en", 3)
    records[2]["tags"][0] = "B-MISC"
    path = write_xtreme(tmp_path / "misc.tsv", records)
    with pytest.raises(DataFormatError, match=r"misc.tsv: label\(s\) not in the label map .*'B-MISC' \(1x\)"):
        evaluate(adapter.path, path, language="en", pack=en_pack)
    # the way out the message names: map the unknown type to a known label (here O), recorded
    report = evaluate(adapter.path, path, language="en", pack=en_pack, map_labels={"B-MISC": "O"})
    assert report.results["en"]["examples"] == 5 and report.settings["map_labels"] == {"B-MISC": "O"}
    with pytest.raises(DataFormatError, match="after mapping labels.*not IOB2"):
        evaluate(adapter.path, path, language="en", pack=en_pack, map_labels={"B-MISC": "MISC"})


def test_cosine_summary_median():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    out = cosine_summary(a, b)
    assert out["median"] == pytest.approx(2**-0.5) and out["pairs"] == 3
    # the control pairs each a_i with another pair's b: orthonormal rows give 0 there, 1 for the pairs
    eye = torch.eye(4)
    out = cosine_summary(eye, eye)
    assert out["median"] == pytest.approx(1.0) and out["mismatched_median"] == pytest.approx(0.0)
    assert out["retrieval"] == 1.0 and cosine_summary(eye[:1], eye[:1])["mismatched_median"] is None
    swapped = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # each translation nearer the other sentence
    assert cosine_summary(eye[:2, :2], swapped)["retrieval"] == 0.0
    twice = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # a repeated sentence is still found
    assert cosine_summary(twice, twice)["retrieval"] == 1.0
    many = torch.randn(2500, 8, generator=torch.Generator().manual_seed(0))  # more rows than one block
    assert cosine_summary(many, many)["retrieval"] == 1.0
    assert cosine_summary(many, many.roll(1, dims=0))["retrieval"] == 0.0


def test_derangement_moves_every_index_and_is_seeded():
    for n in (2, 3, 10, 1000):
        perm = derangement(n)
        assert sorted(perm.tolist()) == list(range(n)) and not (perm == torch.arange(n)).any()
    assert torch.equal(derangement(50, seed=1), derangement(50, seed=1))
    assert not torch.equal(derangement(50, seed=1), derangement(50, seed=2))
    with pytest.raises(CrosslingError):
        derangement(1)


def test_xnli_parallel_reading_keeps_each_premise_once(tmp_path):
    rows_en = [
        ("A cat.", "It sleeps.", "neutral"),
        ("A cat.", "No cat.", "contradiction"),
        ("Rain.", "Wet.", "entailment"),
    ]
    rows_de = [
        ("Eine Katze.", "Sie schläft.", "neutral"),
        ("Eine Katze.", "Keine Katze.", "contradiction"),
        ("Regen.", "Nass.", "entailment"),
    ]
    for name, rows in (("en", rows_en), ("de", rows_de)):
        (tmp_path / f"{name}.tsv").write_text("".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    a, b = read_xnli_parallel(tmp_path / "en.tsv", tmp_path / "de.tsv")
    assert a == ["A cat.", "It sleeps.", "No cat.", "Rain.", "Wet."]
    assert b[0] == "Eine Katze." and len(a) == len(b)


def test_alignment_rows_for_the_pack_and_a_task_adapter(trained_ner, en_pack):
    adapter, _ = trained_ner
    a = ["the cat sees a dog", "mother reads a book", "the river is big"]
    rows = analyze_alignment(a, a, pack=en_pack, task_adapters=[adapter.path])
    assert [r["task_adapter"] for r in rows] == [None, str(adapter.path)]
    assert all(r["median"] == pytest.approx(1.0, abs=1e-5) for r in rows)  # a sentence vs itself


def test_zero_shot_with_a_target_pack_of_its_own_vocabulary(trained_ner, xx_pack_new_vocab, ner_files):
    """UniBridge's zero-shot step: the English task adapter over the target's pack (new vocabulary)."""
    adapter, _ = trained_ner
    report = evaluate(adapter.path, {"xx": ner_files["dev_xx"]}, pack=xx_pack_new_vocab)
    assert report.results["xx"]["pack"] == str(xx_pack_new_vocab.path)
    assert 0.0 <= report.results["xx"]["f1"] <= 1.0


def _pos_records(n: int, seed: int) -> list[dict]:
    tags = {"O": "NOUN", "B-PER": "PROPN", "B-LOC": "PROPN"}
    return [
        {
            "tokens": r["tokens"],
            "tags": ["PUNCT" if t == "." else tags[g] for t, g in zip(r["tokens"], r["tags"], strict=True)],
        }
        for r in ner_records(n, "en", seed)
    ]


def test_pos_and_paraphrase_train_and_evaluate_with_accuracy(en_pack, tmp_path):
    pos = train_task(
        "pos",
        write_xtreme(tmp_path / "pos.tsv", _pos_records(60, 1)),
        tmp_path / "pos-en",
        dev=write_xtreme(tmp_path / "pos-dev.tsv", _pos_records(20, 2)),
        pack=en_pack,
        training=FAST.replace(max_steps=4, save_steps=2, eval_steps=2),
        progress=False,
    )
    assert pos.labels == sorted(UPOS_TAGS)  # UD's closed tag set, whatever the training file has
    report = evaluate(pos.path, {"en": _pos_records(20, 2)}, pack=en_pack)
    assert report.metric == "accuracy" and report.results["en"]["tokens"] > 20
    assert report.results["en"]["accuracy"] == pytest.approx(pos.eval_results["dev"]["accuracy"])

    pairs = [{**r, "label": "1" if r["label"] == "entailment" else "0"} for r in nli_records(30)]
    path = tmp_path / "pawsx.tsv"
    path.write_text("".join(f"{r['text_a']}\t{r['text_b']}\t{r['label']}\n" for r in pairs), encoding="utf-8")
    para = train_task(
        "paraphrase",
        path,
        tmp_path / "para-en",
        pack=en_pack,
        training=FAST.replace(max_steps=2),
        progress=False,
    )
    assert para.labels == ["0", "1"]
    report = evaluate(para.path, path, language="en", pack=en_pack)
    assert report.results["en"]["examples"] == 30 and 0.0 <= report.results["en"]["accuracy"] <= 1.0
    assert "| en |" in report.to_markdown()
