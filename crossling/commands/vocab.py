"""`crossling vocab`: search the vocabulary size by ALP (UniBridge Alg. 1) and write the tokenizer."""

from __future__ import annotations

import argparse
import sys
from typing import Any

DESCRIPTION = """\
Train a SentencePiece unigram tokenizer for a target language. Without --fixed-size, the size is
searched as in UniBridge (Algorithm 1): sizes START, START+STEP, ... up to MAX_SIZE, stopping at
the first size whose gain in average log-probability (ALP) over the previous size is below
EPSILON; that size is chosen. If the corpus cannot support the next size, the largest size of the
grid it supports is chosen. OUT receives an XLM-R style Hugging Face tokenizer (load it with
AutoTokenizer.from_pretrained(OUT)), the raw sentencepiece.model, vocab_search.json (the ALP trace)
and alp.svg (ALP against size). OUT is built beside itself and renamed into place when complete.
"""


def register(subparsers: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    """Add the `vocab` command to `subparsers`."""
    from crossling.vocab.trainer import DEFAULT_TRAIN_THREADS

    parser = subparsers.add_parser(
        name, help=help_text, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", required=True, metavar="FILE", help="target-language text")
    parser.add_argument("--out", required=True, metavar="DIR", help="tokenizer folder to write")
    parser.add_argument(
        "--format",
        default="text",
        metavar="FORMAT",
        help="corpus format: text (one sentence per line, default), auto, bible, jsonl, udhr",
    )
    parser.add_argument("--fixed-size", type=int, metavar="N", help="no search: train N pieces")
    search = parser.add_argument_group("search (UniBridge defaults)")
    search.add_argument("--start", type=int, default=7000, help="first size (default 7000)")
    search.add_argument("--step", type=int, default=1000, help="size increment (default 1000)")
    search.add_argument("--max-size", type=int, default=60000, help="largest size tried (default 60000)")
    search.add_argument("--epsilon", type=float, default=5.0, help="stop when |ALP gain| < this (default 5)")
    search.add_argument(
        "--signed", action="store_true", help="stop when the signed gain ALP(v)-ALP(v-step) < epsilon"
    )
    search.add_argument(
        "--naive", action="store_true", help="run the reference procedure (same result, slower)"
    )
    search.add_argument(
        "--workers", type=int, default=None, help="sizes trained at once (default: min(2, CPUs))"
    )
    spm_group = parser.add_argument_group("SentencePiece")
    spm_group.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    spm_group.add_argument(
        "--character-coverage", type=float, default=1.0, help="(default 1.0; 0.9995 for zh/ja/ko)"
    )
    spm_group.add_argument(
        "--train-threads",
        type=int,
        default=DEFAULT_TRAIN_THREADS,
        help=f"trainer threads (default {DEFAULT_TRAIN_THREADS}); the model depends on it",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists and is not empty")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from crossling.vocab import check_out_dir, save_vocabulary, search_vocab_size, train_fixed_size

    out = check_out_dir(args.out, overwrite=args.overwrite)  # fail now, not after a long search
    common = dict(
        seed=args.seed,
        character_coverage=args.character_coverage,
        train_threads=args.train_threads,
        corpus_format=args.format,
    )
    if args.fixed_size is not None:
        result = train_fixed_size(args.corpus, args.fixed_size, **common)
    else:
        result = search_vocab_size(
            args.corpus,
            start=args.start,
            step=args.step,
            max_size=args.max_size,
            epsilon=args.epsilon,
            absolute=not args.signed,
            workers=args.workers,
            naive=args.naive,
            progress=not args.no_progress,
            **common,
        )
    save_vocabulary(result, out, corpus=str(args.corpus), overwrite=True)
    print(format_table(result))
    print(f"tokenizer ({result.chosen_size + 2} entries) written to {out}")
    return 0


_REASONS = {
    "converged": "ALP gain below epsilon",
    "capped": "the next size is too large for the corpus",
    "max_size": "reached max size",
    "fixed": "fixed size, no search",
}


def format_table(result) -> str:
    """The trace as a small text table; the chosen size is starred."""
    rows = [f"  {'size':>7}  {'ALP':>10}  {'ΔALP':>8}  {'seconds':>7}"]
    for step in result.trace:
        mark = "*" if step.size == result.chosen_size else " "
        delta = "" if step.delta is None else f"{step.delta:+.3f}"
        rows.append(f"{mark} {step.size:>7}  {step.alp:>10.3f}  {delta:>8}  {step.seconds:>7.2f}")
    reason = _REASONS.get(result.stop_reason, result.stop_reason)
    if result.max_feasible_size is not None:
        reason += f"; SentencePiece can build at most {result.max_feasible_size} pieces from it"
    rows.append(
        f"chosen size {result.chosen_size} ({reason}); {result.mode} mode, {result.seconds:.1f} s, "
        f"{result.n_sentences} sentences"
    )
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run `crossling vocab`")
