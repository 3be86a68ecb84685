"""`crossling init`: initialise the embeddings of a new vocabulary for a base model (UniBridge §2.2)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

_METHODS = ("unibridge", "focus", "overlap", "random")


def register(subparsers: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    """Add the `init` command to `subparsers`; its `func` runs :func:`crossling.embeddings.initialize`."""
    parser = subparsers.add_parser(
        name,
        help=help_text,
        description=(
            f"{help_text}. Writes OUT/embeddings.safetensors (key 'embeddings') and OUT/init_report.json, "
            "atomically. Methods: unibridge (lexical overlap + fastText mutual nearest neighbours + "
            "sparsemax mixtures; --alignment procrustes aligns the two fastText spaces first, none is the "
            "paper as written), focus (sparsemax over the shared tokens), overlap (shared rows copied, the "
            "rest random), random (Xavier normal)."
        ),
    )
    parser.add_argument("--base", required=True, help="base model directory or Hugging Face name")
    parser.add_argument("--tokenizer", required=True, help="the new (target) tokenizer directory")
    parser.add_argument(
        "--corpus", help="target-language text, one sentence per line (needed by unibridge and focus)"
    )
    parser.add_argument("--method", default="unibridge", choices=_METHODS, help="default: unibridge")
    parser.add_argument(
        "--alignment",
        default="procrustes",
        choices=("procrustes", "none"),
        help="unibridge only: align the fastText spaces by Procrustes (default) or not (the paper)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--cache-dir", help="fastText vector cache (default: $CROSSLING_CACHE/fasttext or ~/.cache/crossling)"
    )
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the fastText cache")
    parser.add_argument("--ft-dim", type=int, default=300, help="fastText dimension (default 300)")
    parser.add_argument("--ft-epochs", type=int, default=3, help="fastText epochs (default 3)")
    parser.add_argument(
        "--ft-threads", type=int, default=1, help="fastText threads (default 1; more are not deterministic)"
    )
    parser.add_argument("--ft-min-count", type=int, default=1, help="fastText min_count (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of a summary")
    parser.set_defaults(func=_run)
    return parser


def _run(args: argparse.Namespace) -> int:
    import json

    from crossling.embeddings import FastTextConfig, initialize, save_initialization

    fasttext = FastTextConfig.load(
        None, dim=args.ft_dim, epochs=args.ft_epochs, threads=args.ft_threads, min_count=args.ft_min_count
    )
    embeddings, report = initialize(
        args.base,
        args.tokenizer,
        args.corpus,
        method=args.method,
        alignment=args.alignment,
        seed=args.seed,
        fasttext=fasttext,
        cache_dir=False if args.no_cache else args.cache_dir,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    out = save_initialization(args.out, embeddings, report)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(report.summary())
        print(f"wrote {out / 'embeddings.safetensors'} and {out / 'init_report.json'}")
    return 0
