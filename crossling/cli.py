"""The `crossling` command: a thin layer over the Python API.

Each subcommand lives in `crossling/commands/<name>.py` and exposes
``register(subparsers) -> argparse.ArgumentParser``; the parser's default ``func(args) -> int``
does the work. Command modules import torch & co. inside ``func`` so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from crossling import __version__
from crossling.errors import CrosslingError

# name -> (module under crossling.commands or None if not built yet, one-line help, issue number)
COMMANDS: dict[str, tuple[str | None, str, int]] = {
    "vocab": ("vocab", "search the vocabulary size (ALP) and train a target-language tokenizer", 3),
    "init": ("init", "initialise new-vocabulary embeddings (lexical overlap + semantic alignment)", 3),
    "adapt": ("adapt", "build a LanguagePack: vocabulary, embeddings, language adapter (MLM + KL)", 4),
    "train-task": ("train_task", "train a task adapter on a source language (optionally adversarial)", 5),
    "harmony": ("harmony", "compute harmony weights of source languages for a target", 6),
    "predict": ("predict", "predict for a target language with multi-source inference", 6),
    "evaluate": ("evaluate", "evaluate a task adapter on labelled data (offline metrics)", 5),
    "analyze": ("analyze", "analyse representations: cross-lingual alignment of parallel sentences", 5),
    "macular": ("macular", "Macular multi-task adversarial training with code-switch augmentation", 8),
    "distill": ("distill", "distil a compact UniBERT-style multilingual student", 7),
    "bench": ("bench", "list and run the speed and quality benchmarks of benchmarks/", 9),
    "recipe": ("recipe", "run a YAML recipe that reproduces a paper table", 9),
    "demo": ("demo", "the README's main job: adapt a real encoder to Chichewa, offline", 2),
    "data": ("data", "inspect and clean corpora and labelled files (readers, cleaning report)", 2),
}


def _not_built(name: str, issue: int):
    def run(args: argparse.Namespace) -> int:
        print(
            f"crossling {name}: not built yet in crossling {__version__} (tracked as issue #{issue}); "
            "nothing was run.",
            file=sys.stderr,
        )
        return 2

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crossling",
        description=(
            "Bring a pretrained multilingual encoder to a language it serves badly, and carry task "
            "knowledge to that language from several source languages."
        ),
        epilog="Run `crossling COMMAND --help` for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"crossling {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text, issue) in COMMANDS.items():
        if module is None:
            p = sub.add_parser(name, help=f"{help_text} [not built yet]", description=help_text)
            p.set_defaults(func=_not_built(name, issue))
        else:
            importlib.import_module(f"crossling.commands.{module}").register(sub, name, help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # our own progress messages at INFO; other libraries only when they warn (or with -v)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("crossling").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    for option in ("batch_size", "chunk_size", "limit"):  # counts, in every command that has them
        value = getattr(args, option, None)
        if isinstance(value, int) and value < 1:
            flag = "--" + option.replace("_", "-")
            print(f"crossling {args.command}: error: {flag} must be at least 1, got {value}", file=sys.stderr)
            return 2
    try:
        return int(args.func(args) or 0)
    except CrosslingError as err:
        print(f"crossling {args.command}: error: {err}", file=sys.stderr)
        return 1
    # a folder where a file goes, a full disk, no permission: one line, not a traceback
    except OSError as err:
        if args.verbose:
            raise
        print(f"crossling {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"crossling {args.command}: interrupted", file=sys.stderr)
        return 130
