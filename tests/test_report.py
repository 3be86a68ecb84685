"""benchmarks/report.py: RESULTS.md from a temporary results folder, not-measured listing, --check."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "report.py"


@pytest.fixture
def report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The report module pointed at a temporary results folder, README, RESULTS.md and plots folder."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # as when run as a script: `common` is beside it
    spec = importlib.util.spec_from_file_location("bench_report_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = tmp_path / "results"
    results.mkdir()
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- results -->\nold\n<!-- /results -->\n", encoding="utf-8")
    monkeypatch.setattr(module, "RESULTS", results)
    monkeypatch.setattr(module, "README", readme)
    monkeypatch.setattr(module, "RESULTS_MD", tmp_path / "RESULTS.md")
    monkeypatch.setattr(module, "PLOTS", tmp_path / "plots")
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    for name in ("keung_ner", "unibridge_nli"):
        (recipes / f"{name}.yaml").write_text(f"name: {name}\n", encoding="utf-8")
    monkeypatch.setattr(module, "RECIPES", recipes)
    return module


def _write(report: ModuleType, name: str, data: dict) -> None:
    (report.RESULTS / f"{name}.json").write_text(json.dumps(data), encoding="utf-8")


def _init_memory() -> dict:
    run = {
        "target_vocab_size": 30000,
        "mode": "cold",
        "rows": {"lexical": 10, "semantic": 2, "sparsemax": 5, "random": 0},
        "timings": {"fasttext_source": 1.0, "fasttext_target": 1.0, "init": 2.0},
        "wall_s": 4.0,
        "baseline_rss_mb": 100.0,
        "peak_rss_mb": 150.0,
        "extra_mb": 50.0,
        "dense_matrix_would_be_mb": 2048.0,
    }
    return {
        "machine": {"date": "2026-01-02T03:04:05+00:00", "cpu_count": 2},
        "settings": {"sizes": [30000], "fasttext": {"dim": 50, "epochs": 1}},
        "runs": [run],
        "limit_extra_mb": 2048,
        "all_under_limit": True,
    }


def _macular(method: str, mean: float) -> dict:
    accuracy = {lang: mean for lang in ("en", "de", "es", "fr", "ru", "sw")}
    return {
        "machine": {"date": "2026-01-03T00:00:00+00:00", "cpu_count": 2},
        "method": method,
        "accuracy": accuracy,
        "zero_shot_mean": mean,
        "train_seconds": 12.0,
        "settings": {"steps": 5, "batch_size": 4, "lr": 0.001, "train_limit": 10, "eval_limit": 10},
        "macular_report": None,
    }


def test_results_md_has_a_section_per_result_file(report: ModuleType) -> None:
    _write(report, "init_memory", _init_memory())
    _write(report, "macular_nli_adapter", _macular("adapter", 0.4))
    _write(report, "macular_nli_macular", _macular("macular", 0.5))

    assert report.main([]) == 0

    text = report.RESULTS_MD.read_text(encoding="utf-8")
    memory = text.split("## Embedding initialisation memory", 1)[1].split("\n## ", 1)[0]
    assert "Measured 2026-01-02 03:04 UTC on 2 CPU cores" in memory
    assert "python benchmarks/bench_init_memory.py --sizes 30000 --ft-dim 50" in memory
    assert "**Verdict:** goal met" in memory
    assert "| 30000 | cold | 10 / 2 / 5 / 0 |" in memory
    # Macular renders from the per-method files before `--report` has merged them.
    macular = text.split("## Macular on XNLI", 1)[1].split("\n## ", 1)[0]
    assert "+0.100 against a plain task adapter" in macular
    assert "Not measured yet: `code-switch-only`" in macular
    assert "(plots/macular_nli_accuracy.png)" in macular
    assert "- [Macular on XNLI](#macular-on-xnli)" in text
    # The README's generated section links RESULTS.md and stays inside the markers.
    readme = report.README.read_text(encoding="utf-8")
    assert "[benchmarks/RESULTS.md](benchmarks/RESULTS.md)" in readme.split("<!-- /results -->")[0]


def test_missing_benchmarks_are_listed_as_not_measured(report: ModuleType) -> None:
    _write(report, "init_memory", _init_memory())

    text = report.render_results_md()

    missing = text.split("## Not measured yet", 1)[1]
    assert "**Distillation** (`distill`): no result file yet." in missing
    assert (
        "python benchmarks/bench_distill.py --configs teacher init-xxsmall xxsmall-adv xxsmall-noadv"
        in missing
    )
    assert "python benchmarks/bench_macular.py --target nli --method no-consistency" in missing
    assert "python benchmarks/bench_macular.py --target nli --report" in missing
    assert "`init_memory`" not in missing
    assert "Not measured yet: `vocab_search`" in report.render()


def test_check_fails_when_results_md_is_stale(report: ModuleType, capsys: pytest.CaptureFixture) -> None:
    _write(report, "init_memory", _init_memory())
    assert report.main([]) == 0
    assert report.main(["--check"]) == 0

    # A new result file makes the written RESULTS.md stale; README would change too, so restore
    # README's up-to-date text to see that RESULTS.md alone is enough to fail the check.
    readme = report.README.read_text(encoding="utf-8")
    _write(report, "macular_nli_adapter", _macular("adapter", 0.4))
    report.README.write_text(report.updated_readme(readme), encoding="utf-8")

    assert report.main(["--check"]) == 1
    assert "RESULTS.md out of date" in capsys.readouterr().err


def test_plots_are_byte_stable(report: ModuleType) -> None:
    pytest.importorskip("matplotlib")
    _write(report, "macular_nli_adapter", _macular("adapter", 0.4))
    first = [p.read_bytes() for p in report.write_plots()]
    second = [p.read_bytes() for p in report.write_plots()]
    assert first and first == second


def _recipe_table() -> dict:
    """The shape `crossling recipe run` writes to runs/NAME/BUDGET/table.json."""
    row = {"weights": {}, "note": None, "reference": None}
    return {
        "recipe": "keung_ner",
        "title": "Keung et al. NER",
        "reference": None,
        "budget": "cpu",
        "task": "ner",
        "metric": "f1",
        "base": "multilingual-e5-small",
        "sources": ["en"],
        "targets": ["es", "nl"],
        "rows": [
            {
                **row,
                "name": "finetune",
                "label": "Fine-tuning",
                "scores": {"es": 0.5, "nl": 0.6},
                "average": 0.55,
            },
            {
                **row,
                "name": "adversarial",
                "label": "+ adversarial",
                "scores": {"es": 0.7, "nl": None},
                "average": None,
            },
        ],
        "notes": [],
        "comparisons": [],
        "command": "crossling recipe run recipes/keung_ner.yaml --budget cpu",
        "crossling": "0.1.0",
        "date": "2026-01-04T00:00:00+00:00",
    }


def test_published_recipe_tables_render_and_the_rest_are_listed(report: ModuleType) -> None:
    assert "none published yet" in report.render()
    _write(report, "recipe_keung_ner_cpu", _recipe_table())

    assert report.main([]) == 0

    text = report.RESULTS_MD.read_text(encoding="utf-8")
    section = text.split("## Recipe tables", 1)[1]
    assert "Published: 1 of 2." in section
    assert "### Recipe: Keung et al. NER" in section
    assert "| Fine-tuning | 50.0 | 60.0 | 55.0 |" in section
    assert "| + adversarial | 70.0 | — | — |" in section  # an unfinished row says so, no average
    assert "Made by `crossling recipe run recipes/keung_ner.yaml --budget cpu`" in section
    assert "crossling recipe run recipes/unibridge_nli.yaml --budget cpu" in section.split("Not run", 1)[1]
    assert "against its baseline" not in section  # the second row is unfinished: nothing to compare
    readme = report.README.read_text(encoding="utf-8")
    assert "`keung_ner` (best row: Fine-tuning, f1 55.0)" in readme
    if report.write_plots():  # matplotlib is optional
        assert (report.PLOTS / "recipe_keung_ner_cpu.png").is_file()


def test_recipe_findings_compare_finished_rows_with_the_first(report: ModuleType) -> None:
    table = _recipe_table()
    table["rows"][1]["scores"] = {"es": 0.7, "nl": 0.55}
    assert report._recipe_findings(table) == [
        "+ adversarial: above Fine-tuning on 1 of 2 targets, mean +7.5 points (per target es +20.0, nl -5.0)."
    ]
    table["comparisons"] = [{"label": "each vs all"}]  # tables with their own comparisons keep those
    assert report._recipe_findings(table) == []


def test_recipe_findings_measure_a_row_against_the_rows_its_recipe_names(report: ModuleType) -> None:
    table = _recipe_table()
    base = {"weights": {}, "note": None, "reference": None, "average": None}
    table["rows"] = [
        {**base, "name": "finetune", "label": "FT", "scores": {"es": 0.5, "nl": 0.5}, "against": []},
        {**base, "name": "madx", "label": "MAD-X", "scores": {"es": 0.6, "nl": 0.4}, "against": []},
        {
            **base,
            "name": "full",
            "label": "Full",
            "scores": {"es": 0.7, "nl": 0.6},
            "against": ["finetune", "madx"],
        },
        {**base, "name": "no_kl", "label": "- KL", "scores": {"es": 0.6, "nl": 0.7}, "against": ["full"]},
        {**base, "name": "no_x", "label": "- X", "scores": {"es": 0.6, "nl": None}, "against": ["full"]},
    ]
    assert report._recipe_findings(table) == [
        "MAD-X: above FT on 1 of 2 targets, mean +0.0 points (per target es +10.0, nl -10.0).",
        "Full: above FT on 2 of 2 targets, mean +15.0 points (per target es +20.0, nl +10.0).",
        "Full: above MAD-X on 2 of 2 targets, mean +15.0 points (per target es +10.0, nl +20.0).",
        "- KL: above Full on 1 of 2 targets, mean +0.0 points (per target es -10.0, nl +10.0).",
    ]  # the unfinished row is left out
    table["rows"][3]["scores"]["es"] = None
    assert not any(f.startswith("- KL") for f in report._recipe_findings(table))
    table["rows"][0]["against"] = ["madx"]  # the first row, too, may name one
    assert report._recipe_findings(table)[0].startswith("FT: above MAD-X on 1 of 2 targets")


def _publish(report: ModuleType, table: dict, reading: str | None) -> None:
    _write(report, "recipe_keung_ner_cpu", table)
    if reading is not None:
        (report.RESULTS / "recipe_keung_ner_cpu.reading.md").write_text(reading, encoding="utf-8")


def test_a_published_table_needs_a_reading_of_that_very_table(
    report: ModuleType, capsys: pytest.CaptureFixture
) -> None:
    table = _recipe_table()
    _publish(report, table, None)
    assert report.main([]) == 0
    section = report.RESULTS_MD.read_text(encoding="utf-8").split("## Recipe tables", 1)[1]
    assert "No reading of this table has been written yet." in section
    assert report.main(["--check"]) == 1
    assert "recipe_keung_ner_cpu.reading.md is missing" in capsys.readouterr().err

    _publish(
        report, table, f"<!-- reading of the table made {table['date']} -->\nAdversarial helps es, because.\n"
    )
    assert report.main([]) == 0
    section = report.RESULTS_MD.read_text(encoding="utf-8").split("## Recipe tables", 1)[1]
    assert "Reading:\n\nAdversarial helps es, because." in section and "No reading" not in section
    assert report.main(["--check"]) == 0

    table["date"] = "2026-02-01T00:00:00+00:00"  # published again: the old reading no longer applies
    _publish(report, table, None)
    assert report.main([]) == 0
    section = report.RESULTS_MD.read_text(encoding="utf-8").split("## Recipe tables", 1)[1]
    assert "Adversarial helps es" not in section and "does not read it" in section
    assert report.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "reads the table made 2026-01-04T00:00:00+00:00" in err
    assert "'<!-- reading of the table made 2026-02-01T00:00:00+00:00 -->'" in err

    for text, message in [
        ("Adversarial helps es.\n", "its first line must be '<!-- reading of the table made 2026-02-01"),
        (f"<!-- reading of the table made {table['date']} -->\n\n", "says nothing after its first line"),
    ]:
        _publish(report, table, text)
        assert report.main(["--check"]) == 1 and message in capsys.readouterr().err


def _distill_config(tatoeba: float, nli: float, **extra) -> dict:
    scores = {
        "tatoeba_acc": {"mean_trained_languages": tatoeba},
        "xnli_zero_shot_probe_acc": {"mean_non_english": nli},
        "language_id_probe_acc": 0.99,
    }
    return {"scores": scores, "parameters": {"total": 1_000_000}, **extra}


def test_distillation_findings_follow_the_numbers(report: ModuleType) -> None:
    languages = {"en": {}, "es": {}, "gn": {}}
    configs = {
        "teacher": _distill_config(0.9, 0.46),
        "init-xxsmall": _distill_config(0.2, 0.38),
        "xxsmall-adv": _distill_config(
            0.01, 0.34, held_out_distillation_eval={"adv_accuracy": 0.003}, corpus=languages
        ),
        "xxsmall-noadv": _distill_config(0.03, 0.36, held_out_distillation_eval={"mlm": 9.3, "kd": 0.7}),
        "xxsmall-kd-only": _distill_config(0.1, 0.39),
    }
    text = " ".join(report._distill_findings({"configs": configs}))
    assert "3 of 3 trained students" in text
    assert "xxsmall-adv 0.010 vs 0.200" in text and "xxsmall-kd-only 0.100 vs 0.200" in text
    assert "keeps more of the alignment (Tatoeba 0.100 against 0.030 with MLM)" in text
    assert "held-out loss 9.30 nats" in text and "cosine KD (0.70)" in text
    assert "below chance (1/3 = 0.333)" in text and "the paper's claim does not hold" in text

    # the other way round: each sentence turns with its numbers, and missing numbers drop a clause
    configs["xxsmall-noadv"] = _distill_config(0.3, 0.4)
    configs["xxsmall-kd-only"] = _distill_config(0.05, 0.39)
    configs["xxsmall-adv"]["held_out_distillation_eval"]["adv_accuracy"] = 0.9
    configs["xxsmall-adv"]["scores"]["tatoeba_acc"]["mean_trained_languages"] = 0.35
    del configs["teacher"]["scores"]["xnli_zero_shot_probe_acc"]
    text = " ".join(report._distill_findings({"configs": configs}))
    assert "1 of 3 trained students" in text and "xxsmall-noadv 0.300" not in text
    assert "does not keep more of the alignment" in text and "nats" not in text
    assert "teacher —" in text  # a missing score is shown as missing, not a crash
    assert "not below chance" in text and "it helps here" in text
    del configs["xxsmall-noadv"]
    text = " ".join(report._distill_findings({"configs": configs}))
    assert "Removing the MLM term" not in text and "Retrieval with it" not in text


def test_the_bf16_verdict_warns_only_for_figures_measured_without_native_bf16(report: ModuleType) -> None:
    speed = {"language_new_vocab": {"speedup": 1.5}, "finetune_ner": {"speedup": 0.1}}
    warning = "this CPU has no native bf16"
    assert warning not in report._precision_verdict({"speed": speed, "cpu_bf16_native": True})
    assert warning in report._precision_verdict({"speed": speed, "cpu_bf16_native": False})  # older files
    assert warning in report._precision_verdict({"speed": speed, "machine": {"cpu_bf16_native": False}})
    # --skip-speed on an AVX2 machine keeps figures measured where bf16 was native: no warning for them
    kept = {"speed": speed, "machine": {"cpu_bf16_native": False}, "speed_machine": {"cpu_bf16_native": True}}
    assert warning not in report._precision_verdict(kept)
    assert "0.10-1.50x faster" in report._precision_verdict(kept)
