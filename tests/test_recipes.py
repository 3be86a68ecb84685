"""Recipes: a smoke recipe on a tiny model and toy data, its stage cache, and clear recipe errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

import crossling.adapt
import crossling.multisource
import crossling.tasks
from crossling.cli import main
from crossling.errors import ConfigError
from crossling.recipes import RECIPES_DIR, load_recipe, run_recipe
from crossling.testing import tiny_corpus

LABELS = ("entailment", "neutral", "contradiction")
MARKERS = {"entailment": "kubwa", "neutral": "dogo", "contradiction": "kijani"}


def nli_rows(n: int, lang: str, seed: int) -> list[tuple[str, str, str]]:
    sentences = tiny_corpus(n, lang, seed=seed)
    return [(s, " ".join([MARKERS[LABELS[i % 3]]] * 4), LABELS[i % 3]) for i, s in enumerate(sentences)]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """The data root layout the recipes expect, with a few toy lines in every file."""
    root = tmp_path_factory.mktemp("recipe-data")
    (root / "xnli_xtreme").mkdir()
    for lang, seed in (("en", 0), ("es", 1)):
        rows = nli_rows(40, "en", seed)
        text = "".join(f"{a}\t{b}\t{c}\n" for a, b, c in rows)
        (root / "xnli_xtreme" / f"dev-{lang}.tsv").write_text(text, encoding="utf-8")
    (root / "americasnli" / "dev").mkdir(parents=True)
    target = nli_rows(12, "xx", 2)
    lines = ["id\tlanguage\tpremise\thypothesis\tlabel"]
    lines += [f"{12451 + i}\tgn\t{a}\t{b}\t{c}" for i, (a, b, c) in enumerate(target)]
    (root / "americasnli" / "dev" / "gn.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    head = "id\tlanguage\txnli_dev_row\tlabel\tpremise\thypothesis"
    head += "".join(f"\tpremise_{s}\thypothesis_{s}" for s in ("en", "es", "ar", "ru", "zh"))
    en = nli_rows(12, "en", 3)
    aligned = [
        f"{12451 + i}\tgn\t{i + 1}\t{c}\t{a}\t{b}" + f"\t{en[i][0]}\t{en[i][1]}" * 5
        for i, (a, b, c) in enumerate(target)
    ]
    (root / "americasnli" / "dev_aligned_with_xnli_dev.tsv").write_text(
        "\n".join([head, *aligned]) + "\n", encoding="utf-8"
    )
    corpus = root / "americasnlp2021_parallel" / "guarani-spanish"
    corpus.mkdir(parents=True)
    (corpus / "train.gn").write_text("\n".join(tiny_corpus(150, "xx")) + "\n", encoding="utf-8")
    return root


SMOKE = {
    "name": "toy_nli",
    "title": "Toy NLI",
    "task": "nli",
    "base": "tiny-xlmr",
    "sources": ["en", "es"],
    "targets": ["gn"],
    "data": {
        "task_train": "xnli_xtreme/dev-{lang}.tsv",
        "train_examples": 24,
        "dev_examples": 8,
        "test": "americasnli/dev/{lang}.tsv",
        "source_corpus": "xnli_xtreme/dev-{lang}.tsv",
        "target_corpus": {"gn": "americasnlp2021_parallel/guarani-spanish/train.gn"},
        "corpus_lines": 60,
        "parallel": "americasnli/dev_aligned_with_xnli_dev.tsv",
    },
    "training": {
        "language_adapter": {"preset": "smoke", "max_steps": 2, "save_steps": 1, "eval_steps": 1},
        "task_adapter": {"smoke": {"preset": "smoke", "max_steps": 2, "save_steps": 1, "eval_steps": 1}},
    },
    "defaults": {
        "source_pack": {"vocab": "base"},
        "target_pack": {"vocab": "base", "adapter": "unibridge", "eval_lines": 5},
        "combine": {"strategy": "harmony", "num_parallel": 4},
    },
    "rows": [
        {"name": "multi", "label": "two sources"},
        {"name": "english", "label": "English only", "sources": ["en"], "target_pack": {"eval_lines": 6}},
    ],
}


def write_recipe(path: Path, recipe: dict) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path


def kinds(runner, how: str) -> list[str]:
    return sorted(kind for kind, _, h in runner.events if h == how)


def test_smoke_recipe_table_cache_and_invalidation(tmp_path, data_root, monkeypatch):
    recipe_file = write_recipe(tmp_path / "toy.yaml", SMOKE)
    work = tmp_path / "work"

    # 1. a crash in the first evaluation: everything before it is kept
    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash")

    with monkeypatch.context() as patch:
        patch.setattr(crossling.multisource.MultiSourcePredictor, "from_pretrained", crash)
        with pytest.raises(RuntimeError, match="simulated crash"):
            run_recipe(recipe_file, work, data_root=data_root, progress=False)

    # 2. the rerun resumes: finished stages are reused, only what was left runs
    table, runner = run_recipe(recipe_file, work, data_root=data_root, progress=False)
    assert "task" not in kinds(runner, "ran") and "base" in kinds(runner, "cached")
    assert kinds(runner, "ran").count("eval") == 2
    saved = json.loads((work / "table.json").read_text(encoding="utf-8"))
    assert [r["name"] for r in saved["rows"]] == ["multi", "english"]
    assert all(0.0 <= r["scores"]["gn"] <= 1.0 for r in saved["rows"])
    assert set(saved["rows"][0]["weights"]["gn"]) == {"en", "es"}
    markdown = (work / "table.md").read_text(encoding="utf-8")
    assert "| two sources |" in markdown and "| English only |" in markdown
    assert table["command"].endswith("--budget smoke")

    # 3. a rerun trains nothing
    def no_training(*args, **kwargs):
        raise AssertionError("a cached stage was run again")

    with monkeypatch.context() as patch:
        patch.setattr(crossling.adapt, "adapt", no_training)
        patch.setattr(crossling.tasks, "train_task", no_training)
        patch.setattr(crossling.multisource.MultiSourcePredictor, "from_pretrained", no_training)
        _, runner = run_recipe(recipe_file, work, data_root=data_root, progress=False)
    assert kinds(runner, "ran") == []

    # 4. a changed target-pack setting of one row re-runs that row's target pack and evaluation only
    changed = json.loads(json.dumps(SMOKE))
    changed["rows"][1]["target_pack"]["adapter"] = {"kl_weight": 0.0}
    write_recipe(recipe_file, changed)
    with monkeypatch.context() as patch:
        patch.setattr(crossling.tasks, "train_task", no_training)
        _, runner = run_recipe(recipe_file, work, data_root=data_root, progress=False)
    assert kinds(runner, "ran") == ["eval", "pack"]

    # 5. --only one row through the CLI: the other row's finished result stays in the table
    code = main(
        ["recipe", "run", str(recipe_file), "--work", str(work), "--data-root", str(data_root)]
        + ["--only", "english", "--no-progress"]
    )
    assert code == 0
    saved = json.loads((work / "table.json").read_text(encoding="utf-8"))
    assert all(r["scores"]["gn"] is not None for r in saved["rows"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(rowz=[]), "unknown key 'rowz'"),
        (lambda r: r["data"].update(tset="x"), "data: unknown key 'tset'"),
        (
            lambda r: r["rows"][0].update(target_pack={"kl": 0}),
            "rows[0] (multi).target_pack: unknown key 'kl'",
        ),
        (
            lambda r: r["rows"][0].update(target_pack={"adapter": {"kl_wieght": 0}}),
            "kl_wieght",
        ),
        (lambda r: r["data"].update(test="americasnli/missing/{lang}.tsv"), "americasnli/missing/gn.tsv"),
        (lambda r: r.update(base={"cpu": "x"}), "no value for budget 'smoke'"),
    ],
)
def test_bad_recipes_give_one_line_errors(tmp_path, data_root, capsys, change, message):
    recipe = json.loads(json.dumps(SMOKE))
    change(recipe)
    recipe_file = write_recipe(tmp_path / "bad.yaml", recipe)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_recipe(recipe_file, "smoke", data_root)
    code = main(["recipe", "run", str(recipe_file), "--data-root", str(data_root), "--work", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1 and message in err


def test_shipped_recipes_load_and_list(data_root, capsys, tmp_path):
    recipe = load_recipe(RECIPES_DIR / "unibridge_nli.yaml", "smoke", data_root)
    assert [r.name for r in recipe.rows] == [
        "finetune",
        "madx",
        "unibridge",
        "no_kl",
        "random_init",
        "fixed_vocab",
        "english_only",
    ]
    assert main(["recipe", "list"]) == 0
    assert "unibridge_nli" in capsys.readouterr().out
    assert (
        main(["recipe", "show", "unibridge_nli", "--data-root", str(data_root), "--work", str(tmp_path)]) == 0
    )
    out = capsys.readouterr().out
    assert "english_only" in out and "(0 cached)" in out


@pytest.mark.parametrize("name", ["unibridge_nli", "keung_ner"])
@pytest.mark.parametrize("budget", ["smoke", "cpu", "paper"])
def test_shipped_recipes_find_their_real_data(shared_data, tmp_path, monkeypatch, name, budget):
    (tmp_path / "multilingual-e5-small").mkdir()
    (tmp_path / "multilingual-e5-small" / "config.json").write_text("{}", encoding="utf-8")
    monkeypatch.setenv("CROSSLING_MODELS", str(tmp_path))  # a stand-in: nothing is loaded
    recipe = load_recipe(name, budget, shared_data)
    assert len(recipe.targets) >= (3 if name == "unibridge_nli" and budget != "smoke" else 1)
