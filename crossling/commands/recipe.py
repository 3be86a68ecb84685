"""`crossling recipe`: run, list and show the YAML recipes that reproduce papers' tables."""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = """\
examples:
  crossling recipe list
  crossling recipe show unibridge_nli --budget cpu
  crossling recipe run recipes/unibridge_nli.yaml --budget smoke
  crossling recipe run recipes/unibridge_nli.yaml --budget cpu --only unibridge,madx --work runs/nli

Stages are cached by a hash of their inputs and configuration under WORK/stages: run the same
command again after a crash or an interruption and it resumes where it stopped. Data paths are
relative to --data-root (default: $CROSSLING_DATA, else ../shared/data beside the repository).
"""


def register(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")

    run = actions.add_parser(
        "run",
        help="run a recipe (cached stages are reused) and write its table",
        description="Run a recipe's stages (cached ones are reused, an interrupted one resumes) and write "
        "WORK/table.json and table.md. Several processes may run the same command on the same work "
        "directory at once: each stage is locked while it runs and the processes share the rest "
        "(on N cores: N processes with OMP_NUM_THREADS=1).",
    )
    run.add_argument("recipe", help="recipe YAML file, or the name of one in recipes/")
    _common(run)
    run.add_argument("--only", help="comma-separated row names to run (the table keeps finished rows)")
    run.add_argument("--work", type=Path, help="work directory (default: runs/NAME/BUDGET)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")

    ls = actions.add_parser("list", help="list the recipes in recipes/")
    ls.set_defaults(action="list")

    show = actions.add_parser("show", help="show a recipe's rows and stages, and which are cached")
    show.add_argument("recipe", help="recipe YAML file, or the name of one in recipes/")
    _common(show)
    show.add_argument("--work", type=Path, help="work directory to check for cached stages")
    p.set_defaults(func=run_command, _parser=p)
    return p


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--budget", choices=("smoke", "cpu", "paper"), default="smoke", help="size of the run")
    p.add_argument("--data-root", type=Path, help="data root (default: $CROSSLING_DATA or ../shared/data)")


def run_command(args: argparse.Namespace) -> int:
    if args.action is None:
        args._parser.print_help()
        return 2
    return {"run": _run, "list": _list, "show": _show}[args.action](args)


def _run(args: argparse.Namespace) -> int:
    from crossling.recipes import run_recipe

    # an empty --only is an error (see RecipeRunner), not "every row"
    only = [name.strip() for name in args.only.split(",") if name.strip()] if args.only is not None else None
    table, runner = run_recipe(
        args.recipe,
        args.work,
        budget=args.budget,
        only=only,
        data_root=args.data_root,
        progress=not args.no_progress,
    )
    ran = sum(1 for _, _, how in runner.events if how == "ran")
    cached = sum(1 for _, _, how in runner.events if how == "cached")
    print((runner.work / "table.md").read_text(encoding="utf-8"))
    print(f"{ran} stage(s) run, {cached} reused from {runner.work / 'stages'}")
    print(f"wrote {runner.work / 'table.json'} and {runner.work / 'table.md'}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from crossling.recipes import list_recipes, read_recipe_yaml

    recipes = list_recipes()
    if not recipes:
        print("no recipes found")
        return 1
    for path in recipes:
        raw = read_recipe_yaml(path)
        print(f"{path.stem:24s} {raw.get('title', '')}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from crossling.recipes import RecipeRunner, load_recipe

    recipe = load_recipe(args.recipe, args.budget, args.data_root)
    work = args.work or Path("runs") / recipe.name / recipe.budget
    runner = RecipeRunner(recipe, work)
    lines = [
        f"{recipe.title} ({recipe.path}, budget {recipe.budget})",
        f"  task {recipe.task}; base {recipe.base}; data root {recipe.data_root}",
        f"  sources {', '.join(recipe.sources)}; targets {', '.join(recipe.targets)}",
        "  rows:",
    ]
    for row in recipe.rows:
        trained = {"each": "one model per target", "all": "one model on all targets"}.get(row.train_on or "")
        trained = trained or f"sources {', '.join(row.sources)}"
        model = "; the distilled student" if row.model == "student" else ""
        lines.append(f"    {row.name:16s} {row.label} [{row.method}; {trained}{model}]")
    counts: dict[str, list[int]] = {}
    for stage in runner.stages.values():
        done = runner.is_done(stage)
        counts.setdefault(stage.kind, [0, 0])[0 if done else 1] += 1
    lines.append(f"  stages (in {work / 'stages'}):")
    for kind, (done, todo) in counts.items():
        lines.append(f"    {kind:6s} {done + todo} ({done} cached)")
    print("\n".join(lines))
    return 0
