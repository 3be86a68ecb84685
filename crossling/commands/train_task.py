"""`crossling train-task`: train a task adapter (or a fine-tuned baseline) on a source language."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from crossling.commands._training import add_training_arguments, training_config

EXAMPLES = """\
examples:
  crossling train-task --task ner --train panx/train-en.tsv --dev panx/dev-en.tsv --pack packs/en \\
      --out task/ner-en
  crossling train-task --task nli --train xnli-en.tsv --dev xnli-dev-en.tsv --pack packs/en \\
      --out task/nli-en --mode madx
  crossling train-task --task ner --train train.txt --dev dev.txt --base xlm-roberta-base --lang en \\
      --mode finetune --out task/ner-en-ft
  crossling train-task --task ner --train train-en.tsv --dev dev-en.tsv --pack packs/en \\
      --out task/ner-en-adv --adversarial keung --adv-unlabelled de=de.txt es=es.txt

Interrupted? Run the same command with --resume (checkpoints live in OUT.work/checkpoints; a new run
refuses to start over an earlier run's checkpoints). Several processes:
  torchrun --nproc_per_node 2 -m crossling train-task --task ner ... --out task/ner-en
"""


def parse_assignments(values: list[str] | None, option: str) -> dict[str, str]:
    """["de=de.txt", ...] -> {"de": "de.txt"}; a clear error for a value without '='."""
    from crossling.errors import ConfigError

    out: dict[str, str] = {}
    for value in values or []:
        key, sep, path = value.partition("=")
        if not sep or not key or not path:
            raise ConfigError(f"{option} expects LANG=PATH, got {value!r}")
        if key in out:
            raise ConfigError(f"{option}: language {key!r} given twice")
        out[key] = path
    return out


def register(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--task",
        required=True,
        choices=("ner", "pos", "nli", "paraphrase"),
        help="ner/pos: tagging, first subword of each word labelled (NER tags must be IOB2); "
        "nli/paraphrase: sentence-pair classification",
    )
    p.add_argument(
        "--train",
        required=True,
        type=Path,
        help="labelled training file of the source language (format guessed: token<TAB>tag, CoNLL, "
        "CoNLL-U; premise<TAB>hypothesis<TAB>label; PAWS-X)",
    )
    p.add_argument(
        "--dev",
        type=Path,
        help="labelled dev file of the source language: the best checkpoint is chosen on it (entity F1 "
        "for ner, accuracy otherwise); its labels must all occur in --train",
    )
    p.add_argument("--out", required=True, type=Path, help="TaskAdapter directory to write")
    p.add_argument(
        "--pack", type=Path, help="LanguagePack of the source language (optional for --mode finetune)"
    )
    p.add_argument(
        "--base", help="base model (needed without --pack; else where to load the pack's base from)"
    )
    p.add_argument("--lang", help="source language code (default: the pack's)")
    p.add_argument(
        "--mode",
        choices=("adapter", "madx", "finetune"),
        help="adapter: UniBridge Stack(lang, task) (default); madx: plain MAD-X settings; "
        "finetune: full fine-tuning baseline",
    )
    p.add_argument(
        "--reduction-factor", type=int, help="task adapter bottleneck reduction (default 16; --mode adapter)"
    )
    p.add_argument("--config", help="TaskAdapterConfig preset or YAML file (options below override it)")
    p.add_argument("--to-iob2", action="store_true", help="convert IOB1 NER tags to IOB2 while reading")
    p.add_argument(
        "--encoding",
        default="utf-8",
        help="text encoding of the data files: utf-8 (default), latin-1 (CoNLL-2002's originals), or auto",
    )
    p.add_argument("--work-dir", type=Path, help="checkpoints go to WORK_DIR/checkpoints (default: OUT.work)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    a = p.add_argument_group("adversarial language head")
    a.add_argument(
        "--adversarial",
        choices=("none", "keung", "grl", "loss-reversal"),
        help="language discriminator on mean-pooled states: keung = discriminator, generator and task "
        "updates in turn (Keung et al. 2019); grl = gradient reversal layer; loss-reversal = task - "
        "lambda * L_disc (UniBERT); none (default)",
    )
    a.add_argument(
        "--adv-unlabelled",
        nargs="+",
        metavar="LANG=FILE",
        help="unlabelled text of other languages, one sentence a line (needed by every adversarial "
        "method; the source side comes from --train)",
    )
    a.add_argument("--adv-weight", type=float, help="lambda of grl / loss-reversal (default 0.1)")
    a.add_argument(
        "--adv-classes",
        choices=("auto", "binary", "languages"),
        help="discriminator targets: binary = source vs other (Keung), languages = one class per "
        "language (UniBERT); auto (default) = binary for keung, languages otherwise",
    )
    a.add_argument(
        "--adv-disc-lr",
        type=float,
        help="discriminator learning rate (default 5e-4, Keung et al.'s NER setting)",
    )
    a.add_argument(
        "--adv-gen-lr",
        type=float,
        help="keung: generator learning rate (default: --lr / 100, the ratio of Keung et al.'s NER setting)",
    )
    a.add_argument(
        "--adv-batch-size", type=int, help="sentences per discriminator batch (default: --batch-size)"
    )
    add_training_arguments(p)
    p.add_argument(
        "--eval-steps",
        type=int,
        help="evaluate on --dev every N steps (default: the budget's; --save-steps unless N divides it)",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from crossling.config import TaskAdapterConfig
    from crossling.tasks import train_task

    overrides = {
        key: value
        for key, value in {
            "mode": args.mode,
            "adversarial": args.adversarial,
            "reduction_factor": args.reduction_factor,
            "adversarial_weight": args.adv_weight,
            "adv_classes": args.adv_classes,
            "adv_discriminator_lr": args.adv_disc_lr,
            "adv_generator_lr": args.adv_gen_lr,
            "adv_batch_size": args.adv_batch_size,
        }.items()
        if value is not None
    }
    config = TaskAdapterConfig.load(args.config, task=args.task, **overrides)
    training = training_config(args)
    if args.eval_steps is not None:
        training = training.replace(eval_steps=args.eval_steps)
    unlabelled = parse_assignments(args.adv_unlabelled, "--adv-unlabelled")
    adapter = train_task(
        args.task,
        args.train,
        args.out,
        dev=args.dev,
        pack=args.pack,
        base=args.base,
        language=args.lang,
        config=config,
        training=training,
        unlabelled=unlabelled or None,
        to_iob2=args.to_iob2,
        encoding=args.encoding,
        work_dir=args.work_dir,
        resume=args.resume,
        progress=not args.no_progress,
    )
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # torchrun: the main process reports
    summary = adapter.config["summary"]
    processes = adapter.config.get("processes", 1)
    print(
        f"wrote {adapter.path} ({adapter.task}, {len(adapter.labels)} labels, {summary['steps']} steps"
        + (f", {processes} processes)" if processes > 1 else ")")
    )
    truncation = adapter.config["data"]["train_truncation"]
    if truncation["truncated"]:
        print(f"  {truncation['truncated']} of {truncation['sequences']} training sequences were truncated")
    if "dev" in adapter.eval_results:
        dev = adapter.eval_results["dev"]
        shown = {k: round(v, 4) for k, v in dev.items() if k in ("f1", "precision", "recall", "accuracy")}
        print(f"  dev ({dev['language']}): {json.dumps(shown)} best checkpoint: {dev['best_checkpoint']}")
    return 0
