"""Macular on XNLI + PAWS-X with multilingual-e5-small: English split -> zero-shot other languages.

Rows (one per --method): ``adapter`` (plain task adapter, `crossling.tasks.train_task` on the target
task alone), ``code-switch-only`` (Macular's two adapters on original + code-switched data, no
adversaries, no consistency), ``macular`` (everything), and the paper's ablations
``no-task-adversarial``, ``no-language-adversarial``, ``no-consistency``.

Data (only dev sets exist here, and they are parallel across languages): English lines
[0, --train-limit) of XNLI dev and PAWS-X dev are the training split; the other languages are
evaluated on lines from --train-limit on, so no translation of a training pair is ever scored. The
bilingual dictionaries are induced from the training split's parallel lines (XNLI en-de/es/fr/ru/sw,
`crossling.codeswitch.induce_from_parallel`), i.e. from what a user with a little parallel text has.
Targets: XNLI de, es, fr, ru, sw; PAWS-X de, es, fr (the whitespace-free languages are left out: the
dictionary works on words).

The source LanguagePack is the zero-step English pack of bench_tasks_zero_shot (base vocabulary,
random-initialised language adapter), the same for every row. CPU budget: one method per run
(about --steps optimiser steps per stage on 2 shared cores), then --report merges them:

    python benchmarks/bench_macular.py --target nli --method adapter
    python benchmarks/bench_macular.py --target nli --method macular
    ...
    python benchmarks/bench_macular.py --target nli --report

`--smoke` runs a couple of minutes on a few pairs to prove the script works (result left in the work
directory, not in benchmarks/results).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from common import MACULAR_METHODS as METHODS
from common import MACULAR_NLI_TARGETS, RESULTS, data_root, model_dir, write_result

DICT_LANGS = MACULAR_NLI_TARGETS
TARGETS = {"nli": MACULAR_NLI_TARGETS, "paraphrase": ("de", "es", "fr")}
FOLDERS = {"nli": "xnli_xtreme", "paraphrase": "pawsx_xtreme"}


def read(task: str, lang: str) -> list[dict[str, Any]]:
    from crossling.tasks import read_task_data

    return read_task_data(task, data_root() / FOLDERS[task] / f"dev-{lang}.tsv")


def dictionaries(limit: int) -> tuple[dict[str, dict[str, list[str]]], dict[str, Any]]:
    from crossling.codeswitch import dictionary_report, induce_from_parallel

    en = read("nli", "en")[:limit]
    out = {}
    for lang in DICT_LANGS:
        other = read("nli", lang)[:limit]
        source = [s for r in en for s in (r["text_a"], r["text_b"])]
        target = [s for r in other for s in (r["text_a"], r["text_b"])]
        out[lang] = induce_from_parallel(source, target, min_count=2)
    return out, dictionary_report(out, sample=8)


def run_method(args: argparse.Namespace) -> dict[str, Any]:
    from bench_tasks_zero_shot import source_pack

    from crossling.config import TrainingConfig
    from crossling.eval.metrics import task_metrics
    from crossling.macular import train_macular
    from crossling.tasks import load_task_model, train_task

    base = model_dir("multilingual-e5-small")
    work = Path(args.work)
    pack = source_pack(work, base)
    similar = "paraphrase" if args.target == "nli" else "nli"
    train = {task: read(task, "en")[: args.train_limit] for task in (args.target, similar)}
    training = TrainingConfig(
        max_steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        max_length=args.max_length,
        seed=args.seed,
        save_steps=max(1, args.steps),
        eval_steps=max(1, args.steps),
    )
    out = work / f"{args.target}-{args.method}{'-smoke' if args.smoke else ''}"
    started = time.perf_counter()
    dict_info: dict[str, Any] | None = None
    if args.method == "adapter":
        import shutil

        shutil.rmtree(out.with_name(out.name + ".work"), ignore_errors=True)
        adapter = train_task(
            args.target, train[args.target], out, pack=pack, training=training, progress=args.progress
        )
    else:
        dicts, dict_info = dictionaries(args.train_limit)
        preset = "macular" if args.method == "macular" else args.method
        adapter = train_macular(
            train,
            out,
            dictionaries=dicts,
            pack=pack,
            config={"tasks": [args.target, similar], "alpha": args.alpha} | _preset(preset),
            training=training,
        )
    train_seconds = time.perf_counter() - started
    model = load_task_model(adapter.path, pack)
    scores = {}
    for lang in ("en", *TARGETS[args.target]):
        records = read(args.target, lang)[args.train_limit : args.train_limit + args.eval_limit]
        prediction = model.predict(records, batch_size=32)
        scores[lang] = round(
            task_metrics(args.target, [r["label"] for r in records], prediction.labels)["accuracy"], 4
        )
    zero_shot = [scores[lang] for lang in TARGETS[args.target]]
    return {
        "target_task": args.target,
        "method": args.method,
        "accuracy": scores,
        "zero_shot_mean": round(sum(zero_shot) / len(zero_shot), 4),
        "train_seconds": round(train_seconds, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "dictionaries": dict_info,
        "macular_report": {k: v for k, v in adapter.config.get("macular", {}).items() if k != "stage1"}
        or None,
        "settings": {
            k: getattr(args, k)
            for k in ("steps", "batch_size", "lr", "max_length", "seed", "train_limit", "eval_limit", "alpha")
        },
        "base": "multilingual-e5-small",
        "pack": "en, base vocabulary, zero-step language adapter",
    }


def _preset(name: str) -> dict[str, Any]:
    from crossling.macular import MacularConfig

    return dict(MacularConfig.PRESETS[name])


def report(target: str) -> None:
    rows = []
    for method in METHODS:
        path = RESULTS / f"macular_{target}_{method}.json"
        if path.is_file():
            rows.append(json.loads(path.read_text(encoding="utf-8")))
    if not rows:
        raise SystemExit(f"no runs for {target} in {RESULTS}")
    langs = ["en", *TARGETS[target]]
    lines = [
        "| method | " + " | ".join(langs) + " | zero-shot mean | train s |",
        "|" + "---|" * (len(langs) + 3),
    ]
    for row in rows:
        cells = [row["method"], *[f"{row['accuracy'][lang]:.3f}" for lang in langs]]
        cells += [f"{row['zero_shot_mean']:.3f}", f"{row['train_seconds']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    write_result(f"macular_{target}", {"runs": rows, "table": "\n".join(lines)})
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", choices=tuple(TARGETS), default="nli")
    parser.add_argument("--method", choices=METHODS)
    parser.add_argument("--report", action="store_true", help="merge the finished runs into one table")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--max-length", type=int, default=96)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--train-limit", type=int, default=1500)
    parser.add_argument("--eval-limit", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", default="/tmp/crossling-bench-macular")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="a couple of minutes on a few pairs")
    args = parser.parse_args()
    if args.report:
        report(args.target)
        return
    if args.method is None:
        parser.error("give --method (or --report)")
    if args.smoke:
        args.steps, args.batch_size, args.train_limit, args.eval_limit, args.max_length = 2, 4, 60, 8, 48
    torch.set_num_threads(args.threads)
    result = run_method(args)
    if args.smoke:
        path = Path(args.work) / f"macular_{args.target}_{args.method}_smoke.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
        print(f"wrote {path} (smoke run: not a result)")
    else:
        write_result(f"macular_{args.target}_{args.method}", result)
    print(json.dumps({k: result[k] for k in ("accuracy", "zero_shot_mean", "train_seconds")}, indent=1))


if __name__ == "__main__":
    main()
