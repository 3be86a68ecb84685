"""`crossling bench`: list and run the benchmarks in the repository's `benchmarks/`, render the table.

The benchmarks read real data and real models (`../shared/data`, `../models`), which a wheel does not
carry, so they live in the source repository; this command is a front door to them, not a copy.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

from crossling.errors import CrosslingError

EXAMPLES = """\
examples:
  crossling bench list
  crossling bench run vocab_search
  crossling bench run adapt -- --steps 100          # options after -- go to the benchmark
  crossling bench report                            # README results section from benchmarks/results
"""


def benchmarks_dir() -> Path:
    """The repository's `benchmarks/` folder (an editable install or a source checkout)."""
    directory = Path(__file__).resolve().parents[2] / "benchmarks"
    if not (directory / "common.py").is_file():
        raise CrosslingError(
            "the benchmarks ship with the source repository, not the package: clone crossling and "
            "install it with `pip install -e .`"
        )
    return directory


def available() -> dict[str, str]:
    """{name: first line of the docstring} of every `bench_NAME.py`."""
    found = {}
    for path in sorted(benchmarks_dir().glob("bench_*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        found[path.stem.removeprefix("bench_")] = doc.strip().splitlines()[0] if doc.strip() else ""
    return found


def register(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text + ". Results go to benchmarks/results/NAME.json.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", help="list the benchmarks")
    run = actions.add_parser("run", help="run one benchmark (options after -- are passed to it)")
    run.add_argument("name", help="benchmark name, as `crossling bench list` shows it")
    run.add_argument("options", nargs=argparse.REMAINDER, help="options for the benchmark, after --")
    actions.add_parser("report", help="rewrite the README's results section from benchmarks/results/")
    p.set_defaults(func=run_command, action=None)
    return p


def run_command(args: argparse.Namespace) -> int:
    if args.action is None or args.action == "list":
        for name, doc in available().items():
            print(f"{name:<20} {doc}")
        return 0
    directory = benchmarks_dir()
    if args.action == "report":
        return subprocess.call([sys.executable, str(directory / "report.py")], cwd=directory.parent)
    names = available()
    if args.name not in names:
        raise CrosslingError(f"no benchmark {args.name!r}; choose from {', '.join(names)}")
    options = [o for o in args.options if o != "--"]
    script = directory / f"bench_{args.name}.py"
    return subprocess.call([sys.executable, str(script), *options], cwd=directory.parent)
