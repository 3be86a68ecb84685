"""`crossling analyze`: representation analyses (for now: cross-lingual alignment, Keung et al. Table 3)."""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = """\
examples:
  crossling analyze alignment --pack packs/en --parallel en.txt de.txt
  crossling analyze alignment --pack packs/en --task-adapter task/ner-en task/ner-en-keung \\
      --xnli xnli/dev-en.tsv xnli/dev-de.tsv --out results/alignment-en-de

Median cosine between mean-pooled final hidden states of translations; one row for the pack alone
and one per task adapter (its Stack(language, task) setup).
"""


def register(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name, help=help_text, description=help_text + ". Run `crossling analyze ANALYSIS --help`."
    )
    analyses = p.add_subparsers(dest="analysis", metavar="ANALYSIS")
    a = analyses.add_parser(
        "alignment",
        help="median cosine of parallel sentences' representations",
        description="median cosine of parallel sentences' mean-pooled representations (Keung et al. Table 3)",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a.add_argument("--pack", type=Path, help="LanguagePack for side a (and b, without --pack-b)")
    a.add_argument("--pack-b", type=Path, help="LanguagePack for side b (its own language)")
    a.add_argument("--base", help="base model (without --pack, or to override the recorded one)")
    a.add_argument("--task-adapter", nargs="*", type=Path, default=[], help="task adapters to compare")
    src = a.add_mutually_exclusive_group(required=True)
    src.add_argument("--parallel", nargs=2, type=Path, metavar=("A", "B"), help="two line-aligned text files")
    src.add_argument(
        "--xnli", nargs=2, type=Path, metavar=("A", "B"), help="two XNLI dev files (rows aligned)"
    )
    a.add_argument("--limit", type=int, help="use the first N sentence pairs")
    a.add_argument("--batch-size", type=int, default=32, help="sentences per forward pass (default 32)")
    a.add_argument(
        "--max-length", type=int, default=128, help="maximum tokens per sentence (longer ones are truncated)"
    )
    a.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    a.set_defaults(func=run_alignment)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    return p


def run_alignment(args: argparse.Namespace) -> int:
    from crossling.artifacts import write_json_atomic
    from crossling.errors import ConfigError
    from crossling.eval import alignment_markdown, analyze_alignment, read_parallel_text, read_xnli_parallel

    if args.pack is None and args.base is None:
        raise ConfigError("pass --pack (or --base for the bare base model)")
    reader = read_parallel_text if args.parallel else read_xnli_parallel
    path_a, path_b = args.parallel or args.xnli
    a, b = reader(path_a, path_b, limit=args.limit)
    rows = analyze_alignment(
        a,
        b,
        pack=args.pack,
        pack_b=args.pack_b,
        base=args.base,
        task_adapters=args.task_adapter,
        batch_size=args.batch_size,
        max_length=args.max_length,
    )
    table = alignment_markdown(rows)
    print(table)
    if args.out:
        stem = args.out.with_suffix("") if args.out.suffix in (".json", ".md") else args.out
        write_json_atomic(
            stem.with_name(stem.name + ".json"),
            {"a": str(path_a), "b": str(path_b), "pack": args.pack, "pack_b": args.pack_b, "rows": rows},
        )
        from crossling.artifacts import write_text_atomic

        write_text_atomic(stem.with_name(stem.name + ".md"), table)
        print(f"wrote {stem}.json and {stem}.md")
    return 0
