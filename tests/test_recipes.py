"""Recipes: a smoke recipe on a tiny model and toy data, its stage cache, and clear recipe errors."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
import yaml

import crossling.adapt
import crossling.multisource
import crossling.tasks
from crossling.cli import main
from crossling.errors import ConfigError
from crossling.recipes import (
    ATTEMPTS_FILE,
    LOCK_FILE,
    RECIPES_DIR,
    STAGE_FILE,
    RecipeRunner,
    _acquire_lock,
    _eval_records,
    _keep_interrupted_attempt,
    _release_lock,
    _stage_key,
    compare_rows,
    load_recipe,
    run_recipe,
)
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
    # a treebank as a second corpus file: its tokens are text for the language adapter, tags unused
    (root / "ud").mkdir()
    conllu = "".join(
        f"# sent_id = {i}\n1\tkanja{i}\tkanja\tNOUN\t_\t_\t0\troot\t_\t_\n"
        f"2\tmbeu\tmbeu\tVERB\t_\t_\t1\tdep\t_\t_\n\n"
        for i in range(3)
    )
    (root / "ud" / "gn.conllu").write_text(conllu, encoding="utf-8")
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
        "target_corpus": {"gn": ["americasnlp2021_parallel/guarani-spanish/train.gn", "ud/gn.conllu"]},
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
    # what the table cost: every stage behind it, each counted once, cached ones with their first run
    compute = saved["compute"]
    assert compute["finished"] == compute["stages"] == len(runner.stages)
    assert {"base", "pack", "task", "eval"} <= set(compute["seconds_by_kind"])
    assert compute["seconds"] == pytest.approx(sum(compute["seconds_by_kind"].values()), abs=0.5)
    assert f"{compute['stages']} of {compute['stages']} stages" in markdown
    trained = sum(stage.kind in ("pack", "task") for stage in runner.stages.values())
    assert compute["training_precision"] == {"fp32": trained} and "; trained in fp32." in markdown
    # the target pack read both corpus files: plain lines and the treebank's tokens
    corpora = [p.read_text(encoding="utf-8") for p in (work / "stages").glob("pack-*/corpus.txt")]
    assert any("kanja2 mbeu" in text and tiny_corpus(150, "xx")[0] in text for text in corpora)

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


@pytest.fixture()
def hold_lock():
    """hold_lock(directory): another process takes the stage lock there and keeps it until killed."""
    import subprocess
    import sys

    procs = []
    code = (
        "import fcntl, json, os, socket, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "record = {'pid': os.getpid(), 'host': socket.gethostname(), 'started': float(sys.argv[2])}\n"
        "os.write(fd, json.dumps(record).encode())\n"
        "print('locked', flush=True)\n"
        "time.sleep(120)\n"
    )

    def start(directory: Path, started: float | None = None) -> subprocess.Popen:
        directory.mkdir(parents=True, exist_ok=True)
        started = time.time() if started is None else started
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(directory / LOCK_FILE), str(started)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout.readline().strip() == "locked"
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_second_run_skips_stages_another_process_holds_and_takes_over_when_it_dies(
    tmp_path, data_root, hold_lock
):
    recipe_file = write_recipe(tmp_path / "toy.yaml", SMOKE)
    work = tmp_path / "work"
    runner = RecipeRunner(load_recipe(recipe_file, "smoke", data_root), work, progress=False)
    # another process is training the Spanish task adapter, which only the "multi" row needs
    spanish = next(s for s in runner.stages.values() if s.kind == "task" and s.params["language"] == "es")
    # it started 100 s ago and saved a checkpoint 60 s into its run
    other = hold_lock(spanish.directory(work), started=time.time() - 100)
    checkpoint = spanish.directory(work) / "work" / "checkpoint-1" / "model.safetensors"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"")
    os.utime(checkpoint, (time.time() - 40, time.time() - 40))
    waits = []

    def wait() -> None:  # nothing left but the held stage: everything else is already done
        waits.append(1)
        assert runner.is_done(runner.cells[("english", "gn")])
        assert not runner.is_done(spanish) and not runner.is_done(runner.cells[("multi", "gn")])
        other.kill()  # the other run dies: the kernel releases its lock
        other.wait()

    runner._wait = wait
    table = runner.run()
    assert len(waits) == 1
    assert ("task", spanish.label, "ran") in runner.events
    assert all(row["scores"]["gn"] is not None for row in table["rows"])
    # the stage's seconds count the interrupted run up to its last saved file, and say so
    record = runner.record(spanish)
    (attempt,) = record["interrupted_attempts"]
    assert attempt["pid"] == other.pid and attempt["seconds"] == pytest.approx(60, abs=1)
    assert record["seconds"] >= attempt["seconds"]
    others = [s for s in runner.stages.values() if s is not spanish and runner.is_done(s)]
    assert others and all(not runner.record(s)["interrupted_attempts"] for s in others)
    for lock in work.glob(f"stages/*/{LOCK_FILE}"):  # every lock released
        fd, _ = _acquire_lock(lock.parent)
        assert fd is not None
        _release_lock(fd)


def test_a_stage_counts_a_run_stopped_by_ctrl_c_and_survives_damaged_records(tmp_path, data_root, caplog):
    recipe_file = write_recipe(tmp_path / "toy.yaml", SMOKE)
    runner = RecipeRunner(load_recipe(recipe_file, "smoke", data_root), tmp_path / "work", progress=False)
    stage = next(s for s in runner.stages.values() if s.kind == "base")
    directory = stage.directory(runner.work)
    calls = []

    def fn(_stage, _ctx):
        calls.append(1)
        if len(calls) == 1:  # saves a checkpoint 30 s into its run, then Ctrl-C
            (directory / "checkpoint").write_text("saved")
            os.utime(directory / "checkpoint", (time.time() + 30, time.time() + 30))
            raise KeyboardInterrupt
        return {"calls": len(calls)}

    stage.fn = fn
    with pytest.raises(KeyboardInterrupt):
        runner.execute(stage)
    (attempt,) = json.loads((directory / ATTEMPTS_FILE).read_text())
    assert attempt["pid"] == os.getpid() and attempt["seconds"] == pytest.approx(30, abs=2)
    _keep_interrupted_attempt(directory, json.loads((directory / LOCK_FILE).read_text() or "{}"))
    assert len(json.loads((directory / ATTEMPTS_FILE).read_text())) == 1  # released: nothing to add
    lock = {"pid": attempt["pid"], "host": attempt["host"], "started": time.time() - 5}
    _keep_interrupted_attempt(directory, lock)
    _keep_interrupted_attempt(directory, lock)  # the same dead run found twice is kept once
    assert len(json.loads((directory / ATTEMPTS_FILE).read_text())) == 2
    (directory / ATTEMPTS_FILE).write_text(json.dumps([attempt]))

    assert runner.execute(stage) == {"calls": 2}  # the rerun counts the stopped run, once
    record = runner.record(stage)
    assert record["interrupted_attempts"] == [attempt] and record["seconds"] >= attempt["seconds"]
    assert not (directory / ATTEMPTS_FILE).exists()  # in stage.json now
    # a holder that died after finishing the stage, before releasing it: no phantom run
    (directory / LOCK_FILE).write_text(json.dumps(lock))
    fd, _ = _acquire_lock(directory)
    _release_lock(fd)
    assert not (directory / ATTEMPTS_FILE).exists()
    # damaged records are warned about and never stop a run
    (directory / STAGE_FILE).unlink()
    (directory / ATTEMPTS_FILE).write_text("{not json")
    (directory / LOCK_FILE).write_text(json.dumps({"pid": 1, "started": True}))
    with caplog.at_level("WARNING", logger="crossling.recipes"):
        assert runner.execute(stage) == {"calls": 3}
    assert runner.record(stage)["interrupted_attempts"] == []
    assert "no start time in the lock record" in caplog.text and "unreadable" in caplog.text
    # a stage.json cut short (a power loss before the disk had it) is not a finished stage
    for damaged in ("", '{"result": {"calls'):
        (directory / STAGE_FILE).write_text(damaged)
        with caplog.at_level("WARNING", logger="crossling.recipes"):
            assert not runner.is_done(stage)
        assert "is damaged: the stage" in caplog.text
    assert runner.execute(stage) == {"calls": 4} and runner.is_done(stage)


def test_stage_lock_is_exclusive_names_its_holder_and_dies_with_it(tmp_path, hold_lock):

    fd, mine = _acquire_lock(tmp_path)  # free: taken, and says who holds it
    assert fd is not None and mine["pid"] == os.getpid()
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert _acquire_lock(tmp_path)[0] is None  # a second taker (even this process) is refused
    _release_lock(fd)
    other = hold_lock(tmp_path / "held")
    fd, holder = _acquire_lock(tmp_path / "held")
    assert fd is None and holder["pid"] == other.pid
    other.kill()
    other.wait()
    fd, mine = _acquire_lock(tmp_path / "held")  # released by the kernel when its process died
    assert fd is not None and mine["pid"] == os.getpid()
    _release_lock(fd)


def test_to_iob2_may_name_the_languages_that_need_it(tmp_path, data_root):
    from crossling.recipes import _to_iob2

    recipe = load_recipe(write_recipe(tmp_path / "toy.yaml", SMOKE), "smoke", data_root)
    assert _to_iob2(recipe, ["en"]) is False
    recipe.data["to_iob2"] = ["ja", "zh"]
    assert _to_iob2(recipe, ["en"]) is False and _to_iob2(recipe, ["zh"]) is True
    assert _to_iob2(recipe, ["en", "zh", "ja"]) == ["ja", "zh"] and _to_iob2(recipe, ["en", "ar"]) is False
    recipe.data["to_iob2"] = "ja"
    with pytest.raises(ConfigError, match="data.to_iob2 must be"):
        _to_iob2(recipe, ["ja"])


def test_settings_added_later_leave_stage_keys_alone_at_their_default():
    from crossling.config import TrainingConfig

    before = {k: v for k, v in TrainingConfig().to_dict().items() if k != "precision"}  # an older release
    key = _stage_key("task", {"training": before, "task": "nli"}, {}, {})
    assert _stage_key("task", {"training": TrainingConfig().to_dict(), "task": "nli"}, {}, {}) == key
    bf16 = TrainingConfig(precision="bf16").to_dict()
    assert _stage_key("task", {"training": bf16, "task": "nli"}, {}, {}) != key


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
        (lambda r: r["rows"][1].update(against="multy"), "rows[1] (english).against: 'multy' is not another"),
        (lambda r: r["rows"][1].update(against=["english"]), "rows[1] (english).against: 'english' is not"),
        (lambda r: r["rows"][1].update(against=[3]), "rows[1] (english).against: a row name or a list"),
        # mistyped values fail when the recipe loads, naming their key, not hours into a run
        (lambda r: r["data"].update(train_examples="24"), "data.train_examples: expected a whole number"),
        (lambda r: r["data"].update(test_limit=-1), "data.test_limit: expected a whole number >= 1"),
        (lambda r: r["data"].update(corpus_lines=True), "data.corpus_lines: expected a whole number"),
        (lambda r: r["data"].update(map_labels=["B-MISC"]), "data.map_labels: expected a mapping"),
        (lambda r: r["data"].update(to_iob2="es"), "data.to_iob2: expected true/false or a list"),
        (lambda r: r.update(notes=5), "notes: expected a string or a list of strings"),
        (lambda r: r.update(task="nlii"), "task: 'nlii' is not one of"),
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


def test_a_yaml_error_names_its_line(tmp_path, data_root):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntask: nli\nrows:\n  - name: a\n    label: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: not valid YAML"):
        load_recipe(bad, "smoke", data_root)


def test_against_names_the_rows_a_row_is_measured_against_in_the_table(tmp_path, data_root):
    recipe = json.loads(json.dumps(SMOKE))
    recipe["rows"][1]["against"] = "multi"
    loaded = load_recipe(write_recipe(tmp_path / "r.yaml", recipe), "smoke", data_root)
    runner = RecipeRunner(loaded, tmp_path / "work", progress=False)
    assert [row["against"] for row in runner.table()["rows"]] == [[], ["multi"]]
    plain = load_recipe(write_recipe(tmp_path / "p.yaml", SMOKE), "smoke", data_root)
    plain_runner = RecipeRunner(plain, tmp_path / "work", progress=False)
    # a measuring choice, not a setting of any stage: the same stages, so published tables stay cached
    assert {c: s.key for c, s in plain_runner.cells.items()} == {c: s.key for c, s in runner.cells.items()}


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


@pytest.fixture()
def stand_in_e5(tmp_path, monkeypatch) -> None:
    """CROSSLING_MODELS with a stand-in multilingual-e5-small: recipes plan, nothing is loaded."""
    (tmp_path / "multilingual-e5-small").mkdir()
    (tmp_path / "multilingual-e5-small" / "config.json").write_text("{}", encoding="utf-8")
    monkeypatch.setenv("CROSSLING_MODELS", str(tmp_path))


SHIPPED_RECIPES = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


@pytest.mark.parametrize("name", SHIPPED_RECIPES)
@pytest.mark.parametrize("budget", ["smoke", "cpu", "paper"])
def test_shipped_recipes_find_their_real_data(shared_data, stand_in_e5, name, budget):
    recipe = load_recipe(name, budget, shared_data)
    assert len(recipe.targets) >= (3 if name != "keung_ner" and budget != "smoke" else 1)


@pytest.mark.parametrize("native", [True, False])
def test_precision_auto_gives_a_recipe_the_stage_keys_of_what_it_resolves_to(
    shared_data, stand_in_e5, tmp_path, monkeypatch, native
):
    """The cpu budgets say `precision: auto`: on a CPU with native bf16 their stages keep the keys of the
    `bf16` they said before (the published tables' caches stay valid); elsewhere they are fp32 stages."""
    import torch

    import crossling.training_utils

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(crossling.training_utils, "_bf16_is_native", lambda: native)
    explicit = "bf16" if native else "fp32"
    shipped = [RECIPES_DIR / f"{name}.yaml" for name in SHIPPED_RECIPES]
    uses_auto = [p for p in shipped if "precision: auto" in p.read_text("utf-8")]
    assert {p.stem for p in uses_auto} >= {"unibridge_nli", "unibridge_pos", "masakhaner", "macular_nli"}
    for path in uses_auto:
        copy = tmp_path / path.name
        copy.write_text(path.read_text("utf-8").replace("precision: auto", f"precision: {explicit}"), "utf-8")
        keys = {}
        for recipe_path in (path, copy):
            recipe = load_recipe(recipe_path, "cpu", shared_data)
            runner = RecipeRunner(recipe, tmp_path / "work", progress=False)
            keys[recipe_path] = sorted(stage.key for stage in runner.cells.values())
        assert keys[path] == keys[copy], path.stem


READING_PARAMS = ("task", "to_iob2", "skip", "limit", "map_labels")  # what _eval_records reads by


@pytest.mark.parametrize("name", SHIPPED_RECIPES)
def test_every_evaluation_of_the_cpu_and_paper_budgets_reads_its_real_test_data(
    shared_data, stand_in_e5, tmp_path, name
):
    """A cpu table runs for hours: a test file its reader rejects (a stray I- tag in MasakhaNER hau)
    must fail here, not at the first evaluation of that target hours into the run."""
    checked = set()
    for budget in ("cpu", "paper"):
        runner = RecipeRunner(load_recipe(name, budget, shared_data), tmp_path / budget, progress=False)
        for stage in runner.cells.values():
            # rows differ in models, not in what they read: each reading of a file is checked once
            reading = (str(stage.inputs["test"]), *(repr(stage.params.get(k)) for k in READING_PARAMS))
            if reading not in checked:
                checked.add(reading)
                assert _eval_records(stage), reading
    assert checked


def test_macular_recipe_rows_read_targets_through_the_source_pack(tmp_path, data_root):
    pawsx = data_root / "pawsx_xtreme" / "dev-en.tsv"
    pawsx.parent.mkdir(exist_ok=True)
    rows = tiny_corpus(40, "en", seed=5)
    pawsx.write_text(
        "".join(f"{a}\t{a if i % 2 else rows[-1 - i]}\t{i % 2}\n" for i, a in enumerate(rows)),
        encoding="utf-8",
    )
    recipe = {
        "name": "toy_macular",
        "task": "nli",
        "base": "tiny-xlmr",
        "sources": ["en"],
        "targets": ["es"],
        "data": {
            "task_train": "xnli_xtreme/dev-{lang}.tsv",
            "train_examples": 16,
            "dev_examples": 4,
            "test": "xnli_xtreme/dev-{lang}.tsv",
            "test_skip": 20,
            "test_limit": 10,
            "source_corpus": "xnli_xtreme/dev-{lang}.tsv",
            "similar_task": "paraphrase",
            "similar_train": "pawsx_xtreme/dev-{lang}.tsv",
            "dictionary_languages": ["es"],
            "dictionary_parallel": "xnli_xtreme/dev-{lang}.tsv",
        },
        "training": {
            "language_adapter": {"preset": "smoke", "max_steps": 1, "save_steps": 1, "eval_steps": 1},
            "task_adapter": {"preset": "smoke", "max_steps": 2, "save_steps": 1, "eval_steps": 1},
        },
        "defaults": {"source_pack": {"vocab": "base", "eval_lines": 4}, "macular": "macular"},
        "rows": [
            {"name": "adapter", "method": "source-pack"},
            {"name": "macular", "method": "macular", "macular": {"alpha": 0.3}},
        ],
    }
    table, runner = run_recipe(
        write_recipe(tmp_path / "m.yaml", recipe), tmp_path / "work", data_root=data_root
    )
    assert [r["name"] for r in table["rows"]] == ["adapter", "macular"]
    assert all(0.0 <= r["scores"]["es"] <= 1.0 for r in table["rows"])
    # one shared English pack, no target pack; the Macular stage induced an es dictionary
    assert kinds(runner, "ran").count("pack") == 1 and kinds(runner, "ran").count("macular") == 1
    (stage,) = [s for s in runner.stages.values() if s.kind == "macular"]
    assert stage.params["config"]["alpha"] == 0.3 and stage.params["config"]["tasks"] == ["nli", "paraphrase"]
    assert set(runner.result(stage)["dictionaries"]) == {"es"}
    evals = [runner.result(s) for s in runner.stages.values() if s.kind == "eval"]
    assert all(e["examples"] == 10 for e in evals)  # rows 20-29 of the target file

    # with data.task_dev, the Macular stage chooses its checkpoint there, as a task stage does
    recipe["data"]["task_dev"] = "xnli_xtreme/dev-{lang}.tsv"
    planned = RecipeRunner(
        load_recipe(write_recipe(tmp_path / "m1.yaml", recipe), "smoke", data_root), tmp_path
    )
    (stage,) = [s for s in planned.stages.values() if s.kind == "macular"]
    assert stage.inputs["dev"] == data_root / "xnli_xtreme" / "dev-en.tsv"
    del recipe["data"]["task_dev"]

    # a Macular row needs one source, and its dictionaries
    recipe["rows"][1]["sources"] = ["en", "en"]
    with pytest.raises(ConfigError, match="one source pack"):
        load_recipe(write_recipe(tmp_path / "m2.yaml", recipe), "smoke", data_root)
    del recipe["rows"][1]["sources"]
    del recipe["data"]["dictionary_languages"]
    with pytest.raises(ConfigError, match="dictionary_languages"):
        load_recipe(write_recipe(tmp_path / "m3.yaml", recipe), "smoke", data_root)


def test_each_vs_all_rows_plan_one_model_per_target_or_one_for_all(tmp_path, data_root):
    recipe = json.loads(json.dumps(SMOKE))
    recipe["targets"] = ["en", "es"]
    recipe["data"]["test"] = "xnli_xtreme/dev-{lang}.tsv"
    with pytest.raises(ConfigError, match="test_skip to at least train_examples"):
        load_recipe(write_recipe(tmp_path / "leak.yaml", recipe), "smoke", data_root)
    recipe["data"]["test_skip"] = 32  # after the 24 training and 8 dev rows
    recipe["student"] = {
        "size": "xxsmall",
        "corpus": {"en": "xnli_xtreme/dev-en.tsv", "es": ["xnli_xtreme/dev-es.tsv"]},
        "training": {"preset": "smoke", "max_steps": 2},
    }
    recipe["rows"] = [
        {"name": "s_each", "method": "finetune", "model": "student", "train_on": "each"},
        {"name": "s_all", "method": "finetune", "model": "student", "train_on": "all"},
        {"name": "t_all", "method": "finetune", "train_on": "all"},
    ]
    recipe["compare"] = [{"label": "Student", "each": "s_each", "all": "s_all"}]
    loaded = load_recipe(write_recipe(tmp_path / "r.yaml", recipe), "smoke", data_root)
    # the student trains with the paper's optimiser settings under the recipe's own
    assert (
        loaded.student["training"]["learning_rate"] == 5e-4 and loaded.student["training"]["max_steps"] == 2
    )
    runner = RecipeRunner(loaded, tmp_path / "work", progress=False)
    (student,) = [s for s in runner.stages.values() if s.kind == "student"]
    assert sorted(student.inputs) == ["corpus_en_0", "corpus_es_0"]
    trained_on = {
        (cell[0], cell[1]): sorted(runner.cells[cell].deps["adapter0"].inputs) for cell in runner.cells
    }
    assert trained_on[("s_each", "en")] == ["train"] and trained_on[("s_each", "es")] == ["train"]
    assert (
        runner.cells[("s_each", "en")].deps["adapter0"] is not runner.cells[("s_each", "es")].deps["adapter0"]
    )
    assert trained_on[("s_all", "en")] == ["train_en", "train_es"]
    assert runner.cells[("s_all", "en")].deps["adapter0"] is runner.cells[("s_all", "es")].deps["adapter0"]
    assert runner.cells[("s_all", "en")].deps["base"] is student
    assert runner.cells[("t_all", "en")].deps["base"].kind == "base"

    recipe["rows"][0]["train_on"] = "some"
    with pytest.raises(ConfigError, match="train_on"):
        load_recipe(write_recipe(tmp_path / "bad.yaml", recipe), "smoke", data_root)
    recipe["rows"][0]["train_on"] = "each"
    recipe["compare"][0]["all"] = "nope"
    with pytest.raises(ConfigError, match=r"compare\[0\].all"):
        load_recipe(write_recipe(tmp_path / "bad.yaml", recipe), "smoke", data_root)


def test_alignment_table_measures_the_base_and_each_fine_tuned_row(tmp_path, data_root):
    sentences = [f"kanja {i} mbeu dogo {i % 3}" for i in range(12)]
    (tmp_path / "data").mkdir()
    for name in ("en.txt", "gn.txt"):  # a "translation" identical to its source: cosine 1 for any model
        (tmp_path / "data" / name).write_text("\n".join(sentences) + "\n", encoding="utf-8")
    recipe = json.loads(json.dumps(SMOKE))
    recipe["data"]["alignment"] = {
        "gn": [str(tmp_path / "data" / "en.txt"), str(tmp_path / "data" / "gn.txt")]
    }
    recipe["data"]["alignment_limit"] = 10
    recipe["rows"] = [
        {"name": "ft", "label": "Fine-tuning", "method": "finetune", "sources": ["en"]},
        {"name": "ft_es", "label": "Fine-tuning (es)", "method": "finetune", "sources": ["es"]},
    ]
    recipe_file = write_recipe(tmp_path / "align.yaml", recipe)
    table, runner = run_recipe(recipe_file, tmp_path / "work", data_root=data_root, progress=False)
    assert kinds(runner, "ran").count("align") == 3  # the base once, each fine-tuned model once
    cells = runner.alignment_cells
    assert "adapter0" not in cells[("base", "gn")].deps
    for row in ("ft", "ft_es"):  # each row's own fine-tuned model, the one its scores come from
        assert cells[(row, "gn")].deps["adapter0"] is runner.cells[(row, "gn")].deps["adapter0"]
    assert cells[("ft", "gn")].deps["adapter0"] is not cells[("ft_es", "gn")].deps["adapter0"]
    alignment = table["alignment"]
    assert [row["name"] for row in alignment["rows"]] == ["base", "ft", "ft_es"]
    for row in alignment["rows"]:
        assert row["median"]["gn"] == pytest.approx(1.0, abs=1e-5) and row["pairs"]["gn"] == 10
        assert row["mismatched_median"]["gn"] < row["median"]["gn"]  # other sentences: the control
    md = (tmp_path / "work" / "table.md").read_text(encoding="utf-8")
    control = alignment["rows"][2]["mismatched_median"]["gn"]
    assert "Alignment (Keung et al. Table 3)" in md and f"| Fine-tuning (es) | 1.000 ({control:.3f}) |" in md
    # every "translation" is its own sentence, so retrieval finds it (a tie counts as found)
    assert all(row["retrieval"]["gn"] > 0.5 for row in alignment["rows"])
    assert table["compute"]["stages"] == len({s.key for s in runner.stages.values()})

    recipe["data"]["alignment"] = {"xx": recipe["data"]["alignment"]["gn"]}
    with pytest.raises(ConfigError, match="data.alignment: 'xx' is not one of the targets"):
        load_recipe(write_recipe(tmp_path / "bad.yaml", recipe), "smoke", data_root)
    recipe["data"]["alignment"] = {"gn": [recipe["data"]["alignment"]["xx"][0]]}
    with pytest.raises(ConfigError, match="data.alignment.gn must be two line-aligned files, not 1"):
        load_recipe(write_recipe(tmp_path / "bad.yaml", recipe), "smoke", data_root)
    recipe["data"]["alignment"] = {"gn": [str(tmp_path / "data" / "en.txt")] * 2}
    recipe["rows"] = SMOKE["rows"]
    with pytest.raises(ConfigError, match="measured on finetune rows of the base model, and this recipe has"):
        load_recipe(write_recipe(tmp_path / "bad.yaml", recipe), "smoke", data_root)
    recipe["rows"] = [{"name": "base", "method": "finetune"}]
    with pytest.raises(ConfigError, match="the row name 'base' is the alignment table's base model row"):
        load_recipe(write_recipe(tmp_path / "bad.yaml", recipe), "smoke", data_root)


def test_compare_rows_relative_improvement_and_paired_t_test():
    rows = [
        {"name": "each", "scores": {"a": 0.5, "b": 0.4, "c": 0.8}},
        {"name": "all", "scores": {"a": 0.6, "b": 0.5, "c": 0.8}},
        {"name": "half", "scores": {"a": 0.6, "b": None, "c": 0.8}},
    ]
    out = compare_rows(rows, {"label": "x", "each": "each", "all": "all"})
    assert out["relative_improvement"] == pytest.approx((0.2 + 0.25 + 0.0) / 3)
    # differences 0.1, 0.1, 0: mean 1/15, sd 1/sqrt(300) -> t = 2.0 with 2 degrees of freedom
    assert out["t"] == pytest.approx(2.0) and out["p_value"] == pytest.approx(0.1835, abs=1e-3)
    assert compare_rows(rows, {"each": "each", "all": "half"})["complete"] is False
    # 'each' at 0 everywhere: no relative gain; constant differences: no (infinite) t
    zero = [{"name": "e", "scores": {"a": 0.0, "b": 0.0}}, {"name": "a", "scores": {"a": 0.1, "b": 0.1}}]
    out = compare_rows(zero, {"each": "e", "all": "a"})
    assert out["complete"] and out["relative_improvement"] is None and out["t"] is None
    # a target where 'each' scores 0 has no relative gain but is in the t-test: the table says both
    mixed = [
        {"name": "e", "scores": {"a": 0.8, "b": 0.0, "c": 0.6}},
        {"name": "a", "scores": {"a": 0.85, "b": 0.1, "c": 0.62}},
    ]
    out = compare_rows(mixed, {"label": "x", "each": "e", "all": "a"})
    assert (out["n"], out["t_n"]) == (2, 3)
    from crossling.recipes import table_markdown

    table = {"metric": "f1", "title": "t", "budget": "cpu", "base": "b", "sources": ["en"], "targets": []}
    table |= {"rows": [], "comparisons": [out], "command": "c", "crossling": "0", "date": "d"}
    assert "(relative, over 2 targets); paired t-test over 3 targets t = " in table_markdown(table)


def test_finetune_rows_train_with_their_own_settings(tmp_path, data_root):
    recipe = json.loads(json.dumps(SMOKE))
    recipe["rows"].append({"name": "ft", "label": "fine-tuning", "method": "finetune", "sources": ["en"]})

    def task_lrs(loaded) -> dict[str, float]:
        runner = RecipeRunner(loaded, tmp_path / "work", progress=False)
        return {
            row: runner.cells[(row, "gn")].deps["adapter0"].params["training"]["learning_rate"]
            for row in ("multi", "ft")
        }

    # without a finetune block, finetune rows use the task adapters' settings (older recipes)
    same = task_lrs(load_recipe(write_recipe(tmp_path / "a.yaml", recipe), "smoke", data_root))
    assert same["ft"] == same["multi"]
    recipe["training"]["finetune"] = {"preset": "smoke", "max_steps": 2, "learning_rate": 3e-5}
    lrs = task_lrs(load_recipe(write_recipe(tmp_path / "b.yaml", recipe), "smoke", data_root))
    assert lrs["ft"] == 3e-5 and lrs["multi"] == same["multi"]


def test_a_table_says_in_which_precision_its_stages_trained():
    """With `precision: auto` the same recipe trains in bf16 on one machine and fp32 on another: the
    table says which, by stage, and an older table without the record still renders."""
    from crossling.recipes import table_markdown

    path = RECIPES_DIR.parent / "benchmarks" / "results" / "recipe_unibridge_pos_cpu.json"
    table = json.loads(path.read_text(encoding="utf-8"))
    compute = {k: v for k, v in table["compute"].items() if k != "training_precision"}
    assert "; trained in" not in table_markdown({**table, "compute": compute})
    mixed = {**compute, "training_precision": {"bf16": 3, "fp32": 1}}
    assert "; trained in bf16 (3 stages) and fp32 (1 stage)." in table_markdown({**table, "compute": mixed})
    one = {**compute, "training_precision": {"fp32": 4}}
    assert table_markdown({**table, "compute": one}).rstrip().endswith("; trained in fp32.")
    # what a stage trained in: the precision of its TrainingConfigs (a distillation's is nested), no other
    from crossling.recipes import _precisions

    distill = {"student": {"training": {"precision": "bf16"}}, "eval": {"precision": "x"}}
    assert _precisions(distill) == {"bf16"}
    assert _precisions({"rows": [{"training": {"precision": "fp32"}}], "training": {"lr": 1}}) == {"fp32"}


def test_a_real_base_model_is_keyed_by_its_content_and_read_where_it_is_now(tmp_path, monkeypatch, data_root):
    from crossling.recipes import _StageContext
    from crossling.testing import tiny_xlmr

    models = tmp_path / "models"
    tiny_xlmr(models / "my-encoder")
    monkeypatch.setenv("CROSSLING_MODELS", str(models))
    recipe = json.loads(json.dumps(SMOKE)) | {"base": "my-encoder"}
    recipe_file = write_recipe(tmp_path / "r.yaml", recipe)

    def base_key() -> str:
        runner = RecipeRunner(load_recipe(recipe_file, "smoke", data_root), tmp_path / "work", progress=False)
        return next(s for s in runner.stages.values() if s.kind == "base").key

    key = base_key()
    # the same files elsewhere, named by path: the same stage (nothing reruns)
    import shutil

    shutil.copytree(models / "my-encoder", tmp_path / "moved")
    recipe_file = write_recipe(tmp_path / "r.yaml", recipe | {"base": str(tmp_path / "moved")})
    assert base_key() == key
    # new weights of the same size, or a changed tokenizer file: a new stage
    weights = next((tmp_path / "moved").glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert base_key() != key
    shutil.copy(models / "my-encoder" / weights.name, weights)
    assert base_key() == key
    # files that do not change the model (a model card, a download cache) change nothing
    (tmp_path / "moved" / "README.md").write_text("# card")
    (tmp_path / "moved" / ".cache").mkdir()
    (tmp_path / "moved" / ".cache" / "x.metadata").write_text("1")
    assert base_key() == key

    # a finished base stage recorded where the model was; later stages read where it is now
    recipe_file = write_recipe(tmp_path / "r.yaml", recipe)
    runner = RecipeRunner(load_recipe(recipe_file, "smoke", data_root), tmp_path / "work", progress=False)
    base = next(s for s in runner.stages.values() if s.kind == "base")
    runner.execute(base)
    shutil.move(models, tmp_path / "models2")
    monkeypatch.setenv("CROSSLING_MODELS", str(tmp_path / "models2"))
    task = next(s for s in runner.stages.values() if s.kind == "task")
    context = _StageContext(runner, task, task.directory(runner.work))
    assert context.base_path() == str((tmp_path / "models2" / "my-encoder").resolve())


def test_stage_keys_hold_only_the_settings_a_stage_uses(tmp_path, data_root):
    """Tuning the new-vocabulary packs' search must not retrain MAD-X-style base-vocabulary packs, and
    combination settings must not rerun evaluations of one model."""
    recipe = json.loads(json.dumps(SMOKE))
    recipe["rows"].append({"name": "newvocab", "target_pack": {"vocab": "new"}})

    def stages(changed: dict) -> dict[str, tuple[str, str]]:
        loaded = load_recipe(write_recipe(tmp_path / "r.yaml", changed), "smoke", data_root)
        runner = RecipeRunner(loaded, tmp_path / "work", progress=False)
        return {s.key: (s.kind, s.label) for s in runner.stages.values()}

    def rerun(changed: dict) -> list[tuple[str, str]]:
        after = stages(changed)
        return sorted(after[key] for key in set(after) - set(before))

    before = stages(recipe)
    # en, es, and gn three times: base vocabulary (two eval_lines settings) and new vocabulary
    assert sum(kind == "pack" for kind, _ in before.values()) == 5
    searched = json.loads(json.dumps(recipe))
    searched["defaults"]["target_pack"] |= {"vocab_search": {"start": 50, "step": 50}, "fasttext_dim": 8}
    # only the new-vocabulary pack and its evaluation; the base-vocabulary packs keep their keys
    assert rerun(searched) == [("eval", "newvocab on gn"), ("pack", "target pack gn")]
    combined = json.loads(json.dumps(recipe))
    combined["defaults"]["combine"]["num_parallel"] = 6
    # harmony weights only where two sources are combined
    assert rerun(combined) == [("eval", "multi on gn"), ("eval", "newvocab on gn")]


def test_an_empty_only_is_an_error_not_every_row(tmp_path, data_root, capsys):
    recipe_file = write_recipe(tmp_path / "r.yaml", SMOKE)
    code = main(
        ["recipe", "run", str(recipe_file), "--work", str(tmp_path / "w"), "--data-root", str(data_root)]
        + ["--only", " , ", "--no-progress"]
    )
    assert code == 1 and "--only names no row" in capsys.readouterr().err
    assert not (tmp_path / "w" / "stages").exists()
