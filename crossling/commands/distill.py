"""`crossling distill`: a compact UniBERT-style multilingual student (see crossling.distill)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crossling.commands._training import add_training_arguments, training_config

EXAMPLES = """\
examples:
  crossling distill --teacher intfloat/multilingual-e5-small --size xxsmall \\
      --corpus en=wiki.en.txt es=wiki.es.txt gn=gn.txt --out students/xxs
  crossling distill --teacher DIR --size xsmall --corpus en=en.txt sw=sw.txt --preset no-adv \\
      --out students/xs-noadv
  torchrun --nproc_per_node 2 -m crossling distill --teacher DIR --corpus en=en.txt es=es.txt \\
      --out students/xxs

The output is a Hugging Face model directory (AutoModelForMaskedLM / AutoTokenizer) that other
commands take as --base. Interrupted? Run the same command with --resume.
"""


def register(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    from crossling.distill.config import STUDENT_SIZES

    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--teacher", required=True, help="multilingual teacher encoder: hub name or local directory"
    )
    p.add_argument(
        "--size",
        choices=tuple(STUDENT_SIZES),
        help="student size: xxsmall 4x128 (4 heads), xsmall 4x256 (8), small 6x512 (8); default xxsmall",
    )
    p.add_argument(
        "--corpus",
        required=True,
        nargs="+",
        action="extend",
        metavar="LANG=PATH",
        help="text of each language, e.g. --corpus en=en.txt es=es.txt (repeat a language for more files)",
    )
    p.add_argument("--out", required=True, type=Path, help="student directory to write")
    p.add_argument(
        "--work-dir", type=Path, help="where the corpus cache and checkpoints go (default: OUT.work)"
    )
    p.add_argument(
        "--preset",
        default="unibert",
        help="objective preset: unibert (the paper), no-adv (adversarial term removed), mlm-only; "
        "or a YAML file",
    )
    p.add_argument("--no-clean", action="store_true", help="skip UniBERT-style corpus cleaning")
    p.add_argument("--max-lines-per-language", type=int, help="use at most this many lines of each language")
    p.add_argument("--eval-lines", type=int, help="lines per language held out for the report (100)")

    s = p.add_argument_group("student shape (overrides --size)")
    s.add_argument("--layers", type=int, dest="num_layers", help="transformer layers")
    s.add_argument("--hidden", type=int, dest="hidden_size", help="hidden width")
    s.add_argument("--heads", type=int, dest="num_heads", help="attention heads")
    s.add_argument(
        "--intermediate-size", type=int, help="feed-forward width of each layer (default: 4 x hidden)"
    )
    s.add_argument(
        "--max-positions",
        type=int,
        help="position embeddings of the student (512, capped by the teacher's)",
    )
    s.add_argument(
        "--embedding-init",
        choices=("svd", "random"),
        help="svd: teacher embeddings projected by truncated SVD (default); random: BERT init",
    )
    s.add_argument(
        "--untie-decoder",
        action="store_true",
        help="give the MLM head its own output matrix, so embeddings of tokens absent from the corpus stay "
        "as projected from the teacher (BERT and the paper tie them)",
    )

    o = p.add_argument_group("objective: mlm_weight*MLM - adversarial_weight*L_adv + kd_weight*KD")
    o.add_argument("--mlm-weight", type=float, help="weight of the masked-LM loss (0.5)")
    o.add_argument(
        "--adversarial-weight", type=float, help="lambda of the reversed discriminator loss (0.1; 0 = off)"
    )
    o.add_argument("--kd-weight", type=float, help="weight of knowledge distillation (0.4)")
    o.add_argument("--kd-temperature", type=float, help="temperature of logit distillation (2.0)")
    o.add_argument(
        "--kd-mode",
        choices=("auto", "logits", "hidden"),
        help="auto: teacher logits when it has an MLM head, hidden states through a projection otherwise",
    )
    o.add_argument(
        "--kd-token-weight",
        type=float,
        help="hidden-state KD only: share of the per-token cosine term, the rest matches mean-pooled "
        "sentence states (0.5)",
    )
    o.add_argument(
        "--discriminator-lr-multiplier",
        type=float,
        help="language discriminator learning rate = this x --lr (1: the paper's single optimiser)",
    )
    o.add_argument(
        "--discriminator-hidden",
        type=int,
        help="hidden width of the language discriminator (0: one linear layer, the paper's; default 0)",
    )
    o.add_argument("--label-smoothing", type=float, help="label smoothing of the MLM loss (0.1)")
    o.add_argument("--mlm-probability", type=float, help="fraction of tokens masked (0.15)")
    o.add_argument("--sampling-alpha", type=float, help="language sampling exponent, p ~ n^alpha (0.3)")
    add_training_arguments(p)
    p.set_defaults(func=run)
    return p


_CONFIG_OPTIONS = (
    "num_layers",
    "hidden_size",
    "num_heads",
    "intermediate_size",
    "max_positions",
    "embedding_init",
    "kd_token_weight",
    "discriminator_lr_multiplier",
    "discriminator_hidden",
    "mlm_weight",
    "adversarial_weight",
    "kd_weight",
    "kd_temperature",
    "kd_mode",
    "label_smoothing",
    "mlm_probability",
    "sampling_alpha",
    "max_lines_per_language",
    "eval_lines",
)


def distill_config(args: argparse.Namespace):
    from crossling.distill.config import DistillConfig

    overrides = {k: getattr(args, k) for k in _CONFIG_OPTIONS if getattr(args, k, None) is not None}
    if args.size is not None:
        overrides["size"] = args.size
    if args.no_clean:
        overrides["clean"] = False
    if args.untie_decoder:
        overrides["tie_decoder"] = False
    return DistillConfig.load(args.preset, **overrides)


def run(args: argparse.Namespace) -> int:
    from crossling.distill.config import distill_training_config
    from crossling.distill.corpus import parse_corpus_specs
    from crossling.distill.pipeline import distill

    corpus = parse_corpus_specs(args.corpus)  # before any model loads: a typo fails at once
    # the budget's sizes with the paper's optimiser settings (distill_training_config) underneath
    config, training = distill_config(args), training_config(args, load=distill_training_config)
    try:
        student = distill(
            args.teacher,
            corpus,
            args.out,
            config=config,
            training=training,
            work_dir=args.work_dir,
            resume=args.resume,
        )
    except KeyboardInterrupt:
        if _is_main_process():
            print(
                "crossling distill: interrupted; run the same command with --resume to continue from the "
                f"last checkpoint (every {training.save_steps} steps)",
                file=sys.stderr,
            )
        raise
    if _is_main_process():
        print_summary(student)
    return 0


def _is_main_process() -> bool:
    import os

    return int(os.environ.get("RANK", "0")) == 0


def print_summary(student) -> None:
    meta = student.metadata
    shape, training, teacher = meta["student"], meta["training"], meta["teacher"]
    corpus = meta["corpus"]
    lines = [
        f"Distilled student -> {student.path}",
        f"  teacher     {teacher['name_or_path']} ({teacher['model_type']}, hidden {teacher['hidden_size']}, "
        f"{'MLM head' if teacher['mlm_head'] else 'no MLM head'})",
        f"  student     {shape['size']}: {shape['layers']} layers x {shape['hidden']} hidden, "
        f"{shape['heads']} heads, {shape['parameters']['total'] / 1e6:.1f}M parameters "
        f"({shape['parameters']['embeddings'] / 1e6:.1f}M in embeddings)",
        f"  objective   {meta['objective']['encoder_loss']} (KD: {meta['objective']['kd']['mode']})",
        "  corpus      "
        + ", ".join(
            f"{lang} {c['train_lines']} lines (p={c['sampling_probability']})" for lang, c in corpus.items()
        ),
        f"  training    {training['steps']} steps, loss {training['train_loss']:.3f}, "
        f"{training['tokens_per_second']} tokens/s",
    ]
    if meta.get("eval"):
        ev = meta["eval"]["mean_over_languages"]
        lines.append(
            "  held-out    "
            + ", ".join(f"{k} {v:.3f}" for k, v in ev.items())
            + " (adv_accuracy: discriminator language-ID accuracy)"
        )
    print("\n".join(lines))
