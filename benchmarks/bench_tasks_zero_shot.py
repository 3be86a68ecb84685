"""Zero-shot NER transfer from English with multilingual-e5-small: no adversary vs Keung et al. vs GRL,
plus the median cosine of parallel XNLI dev sentences before/after (Keung et al. Table 3).

Setups (source English, targets evaluated on their dev sets, never trained on):
  panx   PAN-X (XTREME WikiANN) en -> ar, ru, ja, zh; alignment en-ar, en-ru, en-zh (XNLI has no ja)
  conll  CoNLL-2003 en -> CoNLL-2002 es, nl (testa); alignment en-es (XNLI has no nl)

CPU budget: one method per run so each run stays under 20 minutes on 2 shared cores; then --report
merges the runs into benchmarks/results/tasks_<setup>.json with a Markdown table:

    python benchmarks/bench_tasks_zero_shot.py --setup panx --method none
    python benchmarks/bench_tasks_zero_shot.py --setup panx --method keung
    python benchmarks/bench_tasks_zero_shot.py --setup panx --method grl
    python benchmarks/bench_tasks_zero_shot.py --setup panx --report

`--smoke` runs a minute-long version on a few sentences (result left in the work directory) to prove
the script works. Keung's generator learning rate defaults to the library's (task lr / 100, the ratio
of Keung et al.'s NER setting); runs made before that default used the task lr itself.

The source LanguagePack keeps the base vocabulary and has a zero-step language adapter (adapters'
random initialisation, invertible part included): the same pack for every method and every language,
so differences come from the task stage alone. Unlabelled target text for the discriminator comes from
the targets' *train* files (tokens only, tags dropped); evaluation uses their dev files. NER gold tags
pass through iob1_to_iob2 (PAN-X zh and CoNLL-2002 es have stray I- tags; seqeval's default mode
reads them the same way, so scores do not change). The English CoNLL-2003 copy here has no MISC type
(Masakhane mapped it to O), so the CoNLL-2002 targets' MISC tags are scored as O too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from common import RESULTS, data_root, model_dir, write_result

METHODS = ("none", "keung", "grl", "loss-reversal")


def setup_files(setup: str, data: Path) -> dict[str, Any]:
    if setup == "panx":
        panx = data / "panx_xtreme"
        targets = ("ar", "ru", "ja", "zh")
        return {
            "train": panx / "train-en.tsv",
            "dev": panx / "dev-en.tsv",
            "targets": {lang: panx / f"dev-{lang}.tsv" for lang in targets},
            "unlabelled": {lang: panx / f"train-{lang}.tsv" for lang in targets},
            "xnli": ("ar", "ru", "zh"),
        }
    conll = data / "conll2002"
    return {
        "train": data / "conll2003_en_masakhane" / "train.txt",
        "dev": data / "conll2003_en_masakhane" / "dev.txt",
        "targets": {"es": conll / "esp.testa", "nl": conll / "ned.testa"},
        "unlabelled": {"es": conll / "esp.train", "nl": conll / "ned.train"},
        "xnli": ("es",),
        # Masakhane's copy of CoNLL-2003 English has no MISC (it is O there): score the targets alike
        "map_labels": {"B-MISC": "O", "I-MISC": "O"},
    }


def source_pack(work: Path, base: Path) -> Path:
    """A zero-step English pack keeping the base vocabulary (built once, reused by every method)."""
    from crossling.language import build_adaptable_model, save_language_pack

    path = work / "pack-en"
    if not (path / "crossling.json").is_file():
        torch.manual_seed(0)
        adaptable = build_adaptable_model(base, "en")
        save_language_pack(
            adaptable,
            path,
            language="en",
            new_vocabulary=False,
            reports={"training": "zero-step (benchmark)"},
        )
    return path


def run_name(args: argparse.Namespace) -> str:
    return args.method + (f"-{args.tag}" if args.tag else "")


def run_method(args: argparse.Namespace) -> dict[str, Any]:
    from crossling.config import TrainingConfig
    from crossling.eval import analyze_alignment, evaluate, read_xnli_parallel
    from crossling.tasks import read_task_data, train_task

    data, base = data_root(), model_dir("multilingual-e5-small")
    files = setup_files(args.setup, data)
    work = Path(args.work) / args.setup
    pack = source_pack(Path(args.work), base)

    train = read_task_data("ner", files["train"], to_iob2=True)[: args.train_limit]
    dev = read_task_data("ner", files["dev"], to_iob2=True)[: args.dev_limit]
    unlabelled = None
    if args.method != "none":
        unlabelled = {
            lang: [
                " ".join(r["tokens"])
                for r in read_task_data("ner", path, to_iob2=True)[: args.unlabelled_limit]
            ]
            for lang, path in files["unlabelled"].items()
        }
    training = TrainingConfig(
        max_steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        save_steps=max(1, args.steps // 2),
        eval_steps=max(1, args.steps // 2),
        max_length=args.max_length,
        seed=args.seed,
    )
    # Library defaults unless overridden: discriminator 5e-4, Keung's generator at the task lr / 100
    # (the ratio of Keung et al.'s NER setting).
    config = {"adversarial": args.method, "adv_batch_size": args.adv_batch_size}
    if args.adv_gen_lr is not None:
        config["adv_generator_lr"] = args.adv_gen_lr
    run_dir = work / f"ner-en-{run_name(args)}.work"
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run each time (train_task refuses old checkpoints)
    started = time.perf_counter()
    adapter = train_task(
        "ner",
        train,
        work / f"ner-en-{run_name(args)}",
        dev=dev,
        pack=pack,
        config=config,
        training=training,
        unlabelled=unlabelled,
        work_dir=run_dir,
        progress=args.progress,
    )
    train_seconds = time.perf_counter() - started

    started = time.perf_counter()
    report = evaluate(
        adapter.path,
        {"en": files["dev"], **files["targets"]},
        pack=pack,
        to_iob2=True,
        limit=args.eval_limit,
        batch_size=64,
        map_labels=files.get("map_labels"),
    )
    eval_seconds = time.perf_counter() - started

    started = time.perf_counter()
    alignment = {}
    for lang in files["xnli"]:
        a, b = read_xnli_parallel(
            data / "xnli_xtreme" / "dev-en.tsv",
            data / "xnli_xtreme" / f"dev-{lang}.tsv",
            limit=args.align_limit,
        )
        rows = analyze_alignment(a, b, pack=pack, task_adapters=[adapter.path], max_length=args.max_length)
        alignment[f"en-{lang}"] = {"pack_only": rows[0]["median"], "with_task_adapter": rows[1]["median"]}
    align_seconds = time.perf_counter() - started

    return {
        "setup": args.setup,
        "method": run_name(args),
        "settings": {
            "base": "multilingual-e5-small",
            "pack": "en, base vocabulary, zero-step language adapter (SeqBnInv, reduction 2)",
            "task_adapter": adapter.config["task_adapter"],
            "adversarial_learning_rates": (adapter.config.get("adversarial") or {}).get("learning_rates"),
            "training": adapter.config["training"],
            "train_sentences": len(train),
            "dev_sentences": len(dev),
            "unlabelled_per_language": args.unlabelled_limit if unlabelled else 0,
            "eval_sentences_per_language": args.eval_limit,
            "xnli_pairs_per_language": args.align_limit,
            "torch_threads": torch.get_num_threads(),
        },
        "dev_en_best": adapter.eval_results.get("dev", {}).get("f1"),
        "best_checkpoint": adapter.eval_results.get("dev", {}).get("best_checkpoint"),
        "f1": {lang: r["f1"] for lang, r in report.results.items()},
        "precision": {lang: r["precision"] for lang, r in report.results.items()},
        "recall": {lang: r["recall"] for lang, r in report.results.items()},
        "truncated": {lang: r["truncation"]["truncated"] for lang, r in report.results.items()},
        "alignment_median_cosine": alignment,
        "history": adapter.config["summary"]["history"],
        "seconds": {
            "train": round(train_seconds, 1),
            "evaluate": round(eval_seconds, 1),
            "alignment": round(align_seconds, 1),
        },
        "load_average": os.getloadavg(),
    }


def report(setup: str) -> None:
    runs = {}
    for path in sorted(RESULTS.glob(f"tasks_{setup}_*.json"), key=lambda p: (len(p.name), p.name)):
        run = json.loads(path.read_text(encoding="utf-8"))
        runs[run["method"]] = run
    if not runs:
        raise SystemExit(f"no runs for {setup}: run --method first")
    langs = list(next(iter(runs.values()))["f1"])
    pairs = list(next(iter(runs.values()))["alignment_median_cosine"])
    head = [
        "method",
        *(f"F1 {lang}" for lang in langs),
        "avg targets",
        *(f"cos {p}" for p in pairs),
        "train s",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    first = next(iter(runs.values()))
    pack_row = ["pack only (no task adapter)", *([""] * (len(langs) + 1))]
    pack_row += [f"{first['alignment_median_cosine'][p]['pack_only']:.3f}" for p in pairs] + [""]
    lines.append("| " + " | ".join(pack_row) + " |")
    for method, run in runs.items():
        targets = [run["f1"][lang] for lang in langs if lang != "en"]
        row = [
            method,
            *(f"{100 * run['f1'][lang]:.1f}" for lang in langs),
            f"{100 * sum(targets) / len(targets):.1f}",
        ]
        row += [f"{run['alignment_median_cosine'][p]['with_task_adapter']:.3f}" for p in pairs]
        row.append(f"{run['seconds']['train']:.0f}")
        lines.append("| " + " | ".join(row) + " |")
    table = "\n".join(lines) + "\n"
    print(table)
    write_result(
        f"tasks_{setup}",
        {
            "setup": setup,
            "table": table,
            "runs": {m: {k: v for k, v in r.items() if k != "history"} for m, r in runs.items()},
            "note": (
                "entity F1 (seqeval default mode, %), dev sets, first N sentences; cos = median cosine of "
                "mean-pooled final states of XNLI dev en/x translations, pack alone vs with the task adapter"
            ),
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--setup", choices=("panx", "conll"), required=True)
    parser.add_argument("--method", choices=METHODS)
    parser.add_argument("--report", action="store_true", help="merge the finished runs into one table")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--adv-batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--adv-gen-lr", type=float, help="keung generator learning rate (default: the library's, --lr / 100)"
    )
    parser.add_argument("--tag", default="", help="suffix of this run's name (e.g. a setting tried)")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--train-limit", type=int, default=5000)
    parser.add_argument("--dev-limit", type=int, default=300)
    parser.add_argument("--unlabelled-limit", type=int, default=2000)
    parser.add_argument("--eval-limit", type=int, default=500)
    parser.add_argument("--align-limit", type=int, default=200)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine)"
    )
    parser.add_argument("--work", default="/tmp/crossling-bench-tasks")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a minute-long run on a few sentences that proves the script works; its result goes to the "
        "work directory, not to benchmarks/results",
    )
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.batch_size, args.adv_batch_size = 4, 4, 4
        args.train_limit, args.dev_limit, args.unlabelled_limit = 200, 16, 16  # 200: every tag occurs
        args.eval_limit, args.align_limit, args.max_length = 16, 8, 32
        args.tag = "smoke"
    if args.report:
        report(args.setup)
        return
    if args.method is None:
        parser.error("give --method (or --report)")
    torch.set_num_threads(args.threads)
    result = run_method(args)
    if args.smoke:
        path = Path(args.work) / args.setup / f"tasks_{args.setup}_{run_name(args)}.json"
        path.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
        print(f"wrote {path} (smoke run: not a result)")
    else:
        write_result(f"tasks_{args.setup}_{run_name(args)}", result)
    print(json.dumps({k: result[k] for k in ("f1", "alignment_median_cosine", "seconds")}, indent=1))


if __name__ == "__main__":
    main()
