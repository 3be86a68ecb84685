"""`crossling adapt`: build a LanguagePack end to end (see crossling.adapt)."""

from __future__ import annotations

import argparse
from pathlib import Path

from crossling.commands._training import add_training_arguments, training_config

EXAMPLES = """\
examples:
  crossling adapt --lang khm --base xlm-roberta-base --corpus khm.txt --out packs/khm
  crossling adapt --lang en --base xlm-roberta-base --corpus en.txt --vocab base --out packs/en
  crossling adapt --lang gn --base DIR --corpus gn.txt --fixed-size 10000 --kl-weight 0 --out packs/gn-no-kl
  torchrun --nproc_per_node 2 -m crossling adapt --lang khm --base DIR --corpus khm.txt --out packs/khm

Interrupted? Run the same command with --resume: finished stages are reused from OUT.work/ and
training continues from its last checkpoint.
"""


def register(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--lang", required=True, help="language code of the pack (ISO 639-3 or -1, e.g. khm)")
    p.add_argument("--base", required=True, help="base encoder: hub name or local directory")
    p.add_argument("--out", required=True, type=Path, help="LanguagePack directory to write")
    p.add_argument(
        "--corpus",
        type=Path,
        help="monolingual text: one sentence per line, .jsonl with 'text', a Bible verse TSV, or the "
        "text of a treebank / NER / NLI file (format guessed); default: Wikipedia",
    )
    p.add_argument("--work-dir", type=Path, help="where stages and checkpoints go (default: OUT.work)")
    p.add_argument("--no-clean", action="store_true", help="skip UniBERT-style corpus cleaning")
    p.add_argument("--max-corpus-lines", type=int, help="use at most this many lines of the corpus")
    p.add_argument("--eval-lines", type=int, default=500, help="lines held out for the perplexity report")

    v = p.add_argument_group("vocabulary (stage 1)")
    v.add_argument(
        "--vocab",
        choices=("new", "base"),
        default="new",
        help="new: search and train a target vocabulary; base: keep the base vocabulary (MAD-X)",
    )
    v.add_argument("--tokenizer", type=Path, help="use this tokenizer directory instead of searching")
    v.add_argument(
        "--fixed-size", type=int, help="train a vocabulary of this size, no search (ablation: 10000)"
    )
    v.add_argument("--vocab-start", type=int, help="first size of the ALP search (7000)")
    v.add_argument("--vocab-step", type=int, help="size increment of the search (1000)")
    v.add_argument("--vocab-max", type=int, help="largest size of the search (60000)")
    v.add_argument("--epsilon", type=float, help="ALP gain below which the search stops (5.0)")

    e = p.add_argument_group("embedding initialisation (stage 2)")
    e.add_argument("--embeddings", type=Path, help="use these embeddings (a `crossling init` output) instead")
    e.add_argument(
        "--method",
        default="unibridge",
        choices=("unibridge", "focus", "overlap", "random"),
        help="initialisation method",
    )
    e.add_argument(
        "--alignment",
        default="procrustes",
        choices=("procrustes", "none"),
        help="align the two fastText spaces before matching (none = the paper)",
    )
    e.add_argument("--ft-dim", type=int, default=300, help="fastText dimension")
    e.add_argument("--ft-epochs", type=int, default=3, help="fastText epochs")

    a = p.add_argument_group("language adapter (stage 3)")
    a.add_argument("--reduction-factor", type=int, help="bottleneck reduction (2)")
    a.add_argument("--leave-out", type=int, nargs="*", help="layers without an adapter")
    a.add_argument("--kl-weight", type=float, help="beta of the KL term (1.0; 0 = ablation)")
    a.add_argument("--kl-temperature", type=float, help="temperature of the KL softmax (1.0)")
    a.add_argument("--mlm-probability", type=float, help="fraction of tokens masked (0.15)")
    add_training_arguments(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from crossling.adapt import AdaptOptions, adapt
    from crossling.config import LanguageAdapterConfig, VocabSearchConfig

    vocab_overrides = {
        key: value
        for key, value in {
            "fixed_size": args.fixed_size,
            "start": args.vocab_start,
            "step": args.vocab_step,
            "max_size": args.vocab_max,
            "epsilon": args.epsilon,
            "seed": args.seed,
        }.items()
        if value is not None
    }
    adapter_overrides = {
        key: value
        for key, value in {
            "reduction_factor": args.reduction_factor,
            "leave_out": args.leave_out,
            "kl_weight": args.kl_weight,
            "kl_temperature": args.kl_temperature,
            "mlm_probability": args.mlm_probability,
        }.items()
        if value is not None
    }
    if args.vocab == "base":
        adapter_overrides.setdefault("train_embeddings", False)
    options = AdaptOptions(
        corpus=args.corpus,
        vocab=args.vocab,
        tokenizer=args.tokenizer,
        embeddings=args.embeddings,
        init_method=args.method,
        alignment=args.alignment,
        vocab_search=VocabSearchConfig.load(None, **vocab_overrides),
        adapter=LanguageAdapterConfig.load(None, **adapter_overrides),
        training=training_config(args),
        work_dir=args.work_dir,
        resume=args.resume,
        clean=not args.no_clean,
        eval_lines=args.eval_lines,
        max_corpus_lines=args.max_corpus_lines,
        fasttext_dim=args.ft_dim,
        fasttext_epochs=args.ft_epochs,
    )
    pack = adapt(args.lang, args.base, args.out, options)
    if pack.reports.get("processes", 1) == 1 or _is_main_process():
        print_summary(pack)
    return 0


def _is_main_process() -> bool:
    import os

    return int(os.environ.get("RANK", "0")) == 0


def print_summary(pack) -> None:
    r = pack.reports
    corpus, training = r.get("corpus", {}), r.get("training", {})
    lines = [
        f"LanguagePack {pack.language} -> {pack.path}",
        f"  base        {pack.base.describe()}",
        f"  corpus      {corpus.get('source')}: {corpus.get('train_lines')} training lines, "
        f"{corpus.get('eval_lines')} held out",
    ]
    if "vocab_search" in r:
        lines.append(f"  vocabulary  {_vocabulary_line(r['vocab_search'])}")
    if "init" in r:
        lines.append(f"  embeddings  {r['init'].get('summary', r['init'])}")
    lines.append(
        f"  training    {training.get('steps')} steps, loss {training.get('train_loss', float('nan')):.3f}, "
        f"{training.get('tokens_per_second')} tokens/s"
    )
    if "eval" in training:
        ev = training["eval"]
        lines.append(f"  held-out    MLM perplexity {ev['perplexity']:.2f}, KL {ev['kl']:.4f}")
    print("\n".join(lines))


def _vocabulary_line(report: dict) -> str:
    """One line for the vocabulary stage: a given tokenizer, or the search's outcome."""
    if "trace" not in report:
        return f"{report.get('tokenizer')} ({report.get('tokenizer_size')} entries, given)"
    trace = report["trace"]
    how = {
        "converged": f"ALP gain {abs(trace[-1]['delta'] or 0):.2f} < {report['params'].get('epsilon')}",
        "capped": "the next size is too large for the corpus",
        "max_size": "reached the largest size",
        "fixed": "fixed size, no search",
    }.get(report["stop_reason"], report["stop_reason"])
    sizes = ", ".join(str(step["size"]) for step in trace)
    return f"{report['chosen_size']} pieces ({how}; sizes tried: {sizes}; {report['seconds']:.1f} s)"
