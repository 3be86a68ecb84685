import json

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from crossling.artifacts import (
    BaseModelIdentity,
    LanguagePack,
    TaskAdapter,
    atomic_directory,
    check_same_labels,
)
from crossling.errors import ArtifactError
from crossling.testing import tiny_xlmr


@pytest.fixture(scope="module")
def base(tiny_xlmr_dir):
    return AutoModel.from_pretrained(tiny_xlmr_dir)


@pytest.fixture(scope="module")
def other_base(tmp_path_factory):
    return AutoModel.from_pretrained(tiny_xlmr(tmp_path_factory.mktemp("other"), seed=1))


def test_identity_tells_checkpoints_apart(base, other_base, tiny_xlmr_dir):
    same = BaseModelIdentity.of(AutoModel.from_pretrained(tiny_xlmr_dir))
    assert BaseModelIdentity.of(base) == same
    assert BaseModelIdentity.of(other_base).fingerprint != same.fingerprint
    assert same.model_type == "xlm-roberta" and same.hidden_size == 32


def test_language_pack_round_trip(tmp_path, base, tiny_xlmr_dir):
    tok = AutoTokenizer.from_pretrained(tiny_xlmr_dir)
    emb = torch.randn(len(tok), 32)
    pack = LanguagePack("nya", BaseModelIdentity.of(base), reports={"init": {"lexical": 7}})

    def write_adapter(d):
        d.mkdir()
        (d / "adapter_config.json").write_text("{}")

    out = pack.save_pretrained(tmp_path / "nya", tokenizer=tok, embeddings=emb, write_adapter=write_adapter)
    meta = json.loads((out / "crossling.json").read_text())
    assert meta["language"] == "nya" and meta["vocabulary"] == "new"
    assert meta["versions"]["torch"] == torch.__version__
    assert meta["base_model"]["fingerprint"] == BaseModelIdentity.of(base).fingerprint

    loaded = LanguagePack.from_pretrained(out, base=base)
    assert loaded.reports == {"init": {"lexical": 7}}
    assert torch.equal(loaded.load_embeddings(), emb)
    assert loaded.load_tokenizer().tokenize("mama asoma") == tok.tokenize("mama asoma")
    assert loaded.adapter_dir == out / "adapter"


def test_pack_keeping_base_vocabulary(tmp_path, base):
    out = LanguagePack("en", BaseModelIdentity.of(base)).save_pretrained(tmp_path / "en")
    loaded = LanguagePack.from_pretrained(out)
    assert not loaded.has_own_vocabulary and loaded.load_embeddings() is None
    assert json.loads((out / "crossling.json").read_text())["vocabulary"] == "base"
    with pytest.raises(ArtifactError, match="keeps the base vocabulary"):
        loaded.load_tokenizer()


def test_wrong_base_model_names_both(tmp_path, base, other_base):
    out = LanguagePack("nya", BaseModelIdentity.of(base)).save_pretrained(tmp_path / "nya")
    with pytest.raises(ArtifactError) as err:
        LanguagePack.from_pretrained(out, base=other_base)
    msg = str(err.value)
    assert BaseModelIdentity.of(base).fingerprint in msg
    assert BaseModelIdentity.of(other_base).fingerprint in msg


def test_crash_during_save_keeps_previous_version(tmp_path, base):
    identity = BaseModelIdentity.of(base)
    target = tmp_path / "pack"
    LanguagePack("nya", identity, reports={"v": 1}).save_pretrained(target)

    def crash(d):
        d.mkdir()
        (d / "half-written.bin").write_bytes(b"\0" * 10)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        LanguagePack("nya", identity, reports={"v": 2}).save_pretrained(target, write_adapter=crash)
    assert LanguagePack.from_pretrained(target).reports == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pack"]  # no temp leftovers


def test_resave_replaces_and_carries_parts(tmp_path, base, tiny_xlmr_dir):
    tok = AutoTokenizer.from_pretrained(tiny_xlmr_dir)
    emb = torch.randn(len(tok), 32)
    target = tmp_path / "pack"
    pack = LanguagePack("nya", BaseModelIdentity.of(base))
    pack.save_pretrained(target, tokenizer=tok, embeddings=emb)
    pack.reports["training"] = {"steps": 3}
    pack.save_pretrained(target)  # only metadata changes
    loaded = LanguagePack.from_pretrained(target)
    assert loaded.reports["training"] == {"steps": 3} and torch.equal(loaded.load_embeddings(), emb)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pack"]


def test_incomplete_or_foreign_directories(tmp_path, base):
    with pytest.raises(ArtifactError, match="not a directory"):
        LanguagePack.from_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="has no crossling.json"):
        LanguagePack.from_pretrained(tmp_path / "empty")
    out = TaskAdapter("ner", ["O", "B-PER"], "en", BaseModelIdentity.of(base)).save_pretrained(tmp_path / "t")
    with pytest.raises(ArtifactError, match="holds a crossling.TaskAdapter, not a crossling.LanguagePack"):
        LanguagePack.from_pretrained(out)
    meta = json.loads((out / "crossling.json").read_text())
    meta.update(format="crossling.LanguagePack", vocabulary="new", language="x", reports={})
    (out / "crossling.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="incomplete: its tokenizer is missing"):
        LanguagePack.from_pretrained(out)


def test_task_adapter_round_trip_and_labels(tmp_path, base):
    identity = BaseModelIdentity.of(base)
    ta = TaskAdapter("ner", ["O", "B-PER", "I-PER"], "en", identity, language_pack="packs/en")
    out = ta.save_pretrained(tmp_path / "ner-en")
    loaded = TaskAdapter.from_pretrained(out, base=base)
    assert loaded.labels == ["O", "B-PER", "I-PER"] and loaded.label2id["I-PER"] == 2
    with pytest.raises(ArtifactError, match="repeated: O"):
        TaskAdapter("ner", ["O", "O"], "en", identity)
    es = TaskAdapter("ner", ["O", "B-LOC", "I-PER"], "es", identity, path=tmp_path / "es")
    with pytest.raises(
        ArtifactError, match=r"only in the first: \['B-PER'\]; only in the second: \['B-LOC'\]"
    ):
        check_same_labels([loaded, es])
    assert check_same_labels([loaded, loaded]) == loaded.labels


def test_atomic_directory_refuses_to_replace_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ArtifactError, match="not a directory"):
        with atomic_directory(tmp_path / "f") as d:
            (d / "a").write_text("y")
    assert (tmp_path / "f").read_text() == "x"


def test_outputs_get_the_permissions_of_the_umask_not_tempfile_private_ones(tmp_path):
    import os

    from crossling.artifacts import write_json_atomic

    old = os.umask(0o022)
    try:
        with atomic_directory(tmp_path / "pack") as d:
            (d / "a").write_text("y")
        write_json_atomic(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "pack").stat().st_mode & 0o777 == 0o755  # mkdtemp made it 0700
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644  # mkstemp made it 0600


def test_an_output_directory_is_checked_before_any_work(tmp_path, base):
    from crossling.artifacts import check_output_directory

    project = tmp_path / "project"
    project.mkdir()
    (project / "thesis.txt").write_text("years of work")
    with pytest.raises(ArtifactError, match="is not a LanguagePack: refusing to replace it"):
        check_output_directory(project, LanguagePack.FORMAT)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArtifactError, match="is not a directory"):
        check_output_directory(tmp_path / "file", LanguagePack.FORMAT)
    # empty, missing, or an earlier pack: fine (a rerun replaces its own output)
    (tmp_path / "empty").mkdir()
    for ok in (tmp_path / "empty", tmp_path / "missing"):
        assert check_output_directory(ok, LanguagePack.FORMAT) == ok.absolute()
    pack = LanguagePack("xx", BaseModelIdentity.of(base)).save_pretrained(tmp_path / "pack")
    assert check_output_directory(pack, LanguagePack.FORMAT) == pack.absolute()
    with pytest.raises(ArtifactError, match="is not a TaskAdapter"):
        check_output_directory(pack, TaskAdapter.FORMAT)


def test_identity_ignores_heads_and_adapters(tiny_xlmr_dir):
    import adapters
    from transformers import AutoModelForMaskedLM

    mlm = AutoModelForMaskedLM.from_pretrained(tiny_xlmr_dir)
    bare = AutoModel.from_pretrained(tiny_xlmr_dir)
    expected = BaseModelIdentity.of(bare)
    assert BaseModelIdentity.of(mlm).fingerprint == expected.fingerprint
    adapters.init(bare)
    bare.add_adapter("nya", config="seq_bn_inv")
    assert BaseModelIdentity.of(bare).fingerprint == expected.fingerprint
