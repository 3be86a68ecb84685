"""`crossling macular`: Macular multi-task adversarial training with code-switch augmentation."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from crossling.commands._training import add_training_arguments, training_config

EXAMPLES = """\
examples:
  crossling macular --tasks nli,paraphrase --train nli=xnli-en.tsv paraphrase=pawsx-en.tsv \\
      --dict de=en-de.tsv fr=en-fr.tsv --pack packs/en --out task/nli-macular
  crossling macular --tasks nli,paraphrase --target paraphrase --train nli=a.tsv paraphrase=b.tsv \\
      --dict de=en-de.tsv --pack packs/en --out task/pawsx-macular --config no-language-adversarial

Dictionaries are TSV word pairs (source<TAB>translation, one a line). Without one, induce it first
with crossling.codeswitch.induce_from_parallel / induce_from_vectors (see its docstring).
The result is an ordinary TaskAdapter of the target task:
  crossling evaluate --task-adapter task/nli-macular --data de=xnli-de.tsv --pack packs/de
"""


def register(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--tasks", required=True, help="comma-separated tasks of the multi-task module (nli, paraphrase)"
    )
    p.add_argument(
        "--train",
        required=True,
        nargs="+",
        metavar="TASK=FILE",
        help="labelled source-language training file per task (premise<TAB>hypothesis<TAB>label; PAWS-X)",
    )
    p.add_argument(
        "--dict",
        nargs="+",
        metavar="LANG=FILE",
        help="bilingual dictionaries from the source language, TSV word pairs (needed unless --config plain)",
    )
    p.add_argument("--pack", required=True, type=Path, help="LanguagePack of the source language")
    p.add_argument("--out", required=True, type=Path, help="TaskAdapter directory to write")
    p.add_argument("--dev", type=Path, help="labelled dev file of the target task (scored at the end)")
    p.add_argument("--target", help="the task the result predicts (default: the first of --tasks)")
    p.add_argument("--similar", help="task of the task-level consistency loss (default: another of --tasks)")
    p.add_argument("--base", help="where to load the pack's base model from (default: as recorded)")
    p.add_argument("--lang", help="source language code (default: the pack's)")
    p.add_argument(
        "--config",
        help="MacularConfig preset (macular, plain, code-switch-only, no-task-adversarial, "
        "no-language-adversarial, no-consistency) or YAML file; options below override it",
    )
    m = p.add_argument_group("Macular")
    m.add_argument("--alpha", type=float, help="aggregation alpha*shared + (1-alpha)*specific (default 0.5)")
    m.add_argument(
        "--ratio", type=float, help="code-switch ratio: fraction of switchable words replaced (0.3)"
    )
    m.add_argument("--beta1", type=float, help="weight of the symmetric-KL consistency (default 1)")
    m.add_argument("--beta2", type=float, help="weight of the language-adversarial loss (default 0.1)")
    m.add_argument("--beta3", type=float, help="weight of the task-level consistency loss (default 0.1)")
    m.add_argument("--task-adv-weight", type=float, help="weight of the uniform-target task loss (0.1)")
    m.add_argument("--multitask-steps", type=int, help="stage-1 steps (default: as many as stage 2)")
    m.add_argument("--reduction-factor", type=int, help="bottleneck reduction of each adapter (16)")
    # a subset: Macular's plain loop (crossling.macular) has no checkpoints; --max-steps sizes stage 2
    add_training_arguments(
        p,
        options=("budget", "max_steps", "batch_size", "learning_rate", "max_length", "seed", "precision"),
        help_texts={
            "budget": "preset size of the run (smoke, cpu, paper)",
            "max_steps": "stage-2 optimiser steps (overrides the budget)",
            "batch_size": "pairs per batch (per task)",
            "max_length": "maximum tokens per pair",
            "seed": "random seed (training and code-switching)",
        },
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from crossling.commands.train_task import parse_assignments
    from crossling.macular import MacularConfig, read_train_assignments, train_macular

    tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    overrides = {
        key: value
        for key, value in {
            "target_task": args.target,
            "similar_task": args.similar,
            "alpha": args.alpha,
            "code_switch_ratio": args.ratio,
            "consistency_weight": args.beta1,
            "language_adversarial_weight": args.beta2,
            "task_consistency_weight": args.beta3,
            "task_adversarial_weight": args.task_adv_weight,
            "multitask_steps": args.multitask_steps,
            "reduction_factor": args.reduction_factor,
        }.items()
        if value is not None
    }
    config = MacularConfig.load(args.config, tasks=tasks, **overrides)
    training = training_config(args)
    adapter = train_macular(
        read_train_assignments(args.train, "--train"),
        args.out,
        dictionaries=parse_assignments(args.dict, "--dict") or None,
        pack=args.pack,
        base=args.base,
        language=args.lang,
        dev=args.dev,
        config=config,
        training=training,
    )
    report = adapter.config["macular"]
    print(
        f"wrote {adapter.path} ({adapter.task}, {len(adapter.labels)} labels; "
        f"{report['stage1']['steps']} multi-task + {report['stage2']['steps']} task-specific steps, "
        f"{report['seconds']} s)"
    )
    switch = report["code_switch"]
    if switch:
        sample = {lang: pairs[:3] for lang, pairs in switch["dictionary_sample"].items()}
        print(f"  dictionary sizes: {json.dumps(switch['dictionary_sizes'])} sample: {json.dumps(sample)}")
        print(
            f"  code-switched {switch['switched_words']} of {switch['switchable_words']} switchable words "
            f"({switch['words']} words seen)"
        )
    if "dev" in adapter.eval_results:
        dev = adapter.eval_results["dev"]
        print(f"  dev ({dev['language']}): accuracy {dev['accuracy']:.4f}")
    return 0
