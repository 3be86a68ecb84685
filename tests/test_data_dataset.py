"""to_dataset: records -> datasets.Dataset, with ClassLabel mapping."""

from __future__ import annotations

from itertools import islice

import pytest

from crossling.data import NLI_LABELS, read_conllu, read_xnli, to_dataset
from crossling.errors import DataFormatError


def test_nli_labels_become_class_label(shared_data):
    records = list(islice(read_xnli(shared_data / "xnli_xtreme/dev-en.tsv"), 3))
    ds = to_dataset(records, label_names=NLI_LABELS)
    assert ds.column_names == ["premise", "hypothesis", "label"]
    assert ds.features["label"].names == list(NLI_LABELS)
    assert ds["label"] == [1, 2, 0]  # neutral, contradiction, entailment
    assert ds[0]["premise"] == "And he said, Mama, I'm home."


def test_tags_become_sequence_of_class_label(shared_data):
    records = list(islice(read_conllu(shared_data / "ud/UD_English-EWT/en_ewt-ud-dev.conllu"), 2))
    names = ["ADP", "DET", "PROPN", "VERB", "NOUN", "PUNCT", "PRON", "AUX", "ADJ", "ADV", "NUM", "PART"]
    names += ["CCONJ", "SCONJ", "INTJ", "SYM", "X"]
    ds = to_dataset(records, label_names=names)
    assert ds.features["tags"].feature.names == names
    assert ds[0]["tokens"] == ["From", "the", "AP", "comes", "this", "story", ":"]
    assert ds[0]["tags"] == [0, 1, 2, 3, 1, 4, 5]
    assert ds[0]["id"].endswith("-0001")


def test_without_label_names_lists_stay_sequences():
    ds = to_dataset([{"tokens": ["a", "b"], "tags": ["O", "B-PER"]}, {"tokens": ["c"], "tags": ["O"]}])
    assert ds["tokens"] == [["a", "b"], ["c"]]
    assert ds["tags"] == [["O", "B-PER"], ["O"]]


def test_bad_records():
    with pytest.raises(DataFormatError, match=r"^<records>:2: label 'maybe' is not one of"):
        to_dataset([{"label": "entailment"}, {"label": "maybe"}], label_names=NLI_LABELS)
    with pytest.raises(DataFormatError, match=r"^<records>:2: record keys"):
        to_dataset([{"text": "a"}, {"text": "b", "id": 1}])
    with pytest.raises(DataFormatError, match=r"^<records>:1: label 3 is neither"):
        to_dataset([{"label": 3}], label_names=NLI_LABELS)
