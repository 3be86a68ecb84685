"""`crossling harmony`: harmony weights of source languages for one or more targets (UniBridge 2.4)."""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = """\
examples:
  crossling harmony --target packs/gn --sources packs/en packs/es packs/ar packs/ru packs/zh \\
      --parallel americasnli/dev_aligned_with_xnli_dev.tsv --out harmony/gn.json
  crossling harmony --target packs/gn packs/quy --sources packs/en packs/es \\
      --parallel dev_aligned_with_xnli_dev.tsv --temperature 0.05 --out harmony/all.json --plot all.svg
  crossling harmony --target packs/nya --sources packs/en packs/sw --parallel nya=dev.nya en=dev.en \\
      --weight sw=0.2 --out harmony/nya.json

--parallel is AmericasNLI's alignment table, a TSV whose header names languages, or LANG=FILE
line-aligned text files (the target's included). A source without parallel sentences is excluded
with a warning unless --weight gives it one (the others then share the rest).
d = 1 / mean L2 distance of the K sentences' mean-pooled states; weights = softmax(d / temperature).
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
        "--target", required=True, nargs="+", type=Path, metavar="PACK", help="target LanguagePack(s)"
    )
    p.add_argument(
        "--sources", required=True, nargs="+", type=Path, metavar="PACK", help="source LanguagePacks"
    )
    add_parallel_arguments(p, required=True)
    p.add_argument(
        "--weight",
        nargs="+",
        metavar="LANG=W",
        help="fixed weight for a source (e.g. one without parallel text)",
    )
    p.add_argument("--out", required=True, type=Path, help="HarmonyWeights JSON file to write")
    p.add_argument(
        "--plot",
        type=Path,
        help="write a targets x sources heatmap (SVG; default with several targets: OUT with .svg)",
    )
    p.add_argument("--base", help="where to load the packs' base model from (default: as recorded)")
    p.add_argument("--batch-size", type=int, default=32, help="sentences per forward pass (default 32)")
    add_device_argument(p)
    p.add_argument(
        "--max-length", type=int, default=128, help="maximum tokens per sentence (longer ones are truncated)"
    )
    p.set_defaults(func=run)
    return p


def add_device_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="auto",
        help="where the models run: auto (a GPU when torch sees one, else the CPU), cpu, cuda, cuda:1, ...",
    )


def resolve_device(value: str) -> str:
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if value == "auto" else value


def add_parallel_arguments(p: argparse.ArgumentParser, *, required: bool) -> None:
    g = p.add_argument_group("harmony weights")
    g.add_argument(
        "--parallel",
        nargs="+",
        required=required,
        metavar="FILE | LANG=FILE",
        help="parallel sentences: an alignment/language-column TSV, or line-aligned text files per language",
    )
    g.add_argument("--num-parallel", type=int, help="K parallel sentences per language pair (default 10)")
    g.add_argument("--temperature", type=float, help="tau of softmax(d / tau) (default 1, the paper)")
    g.add_argument("--config", help="HarmonyConfig YAML file (the options above override it)")


def parse_parallel(values: list[str]):
    """["file.tsv"] -> Path; ["gn=gn.txt", "en=en.txt"] -> {"gn": Path, "en": Path}."""
    from crossling.commands.train_task import parse_assignments
    from crossling.errors import ConfigError

    if len(values) == 1 and "=" not in values[0]:
        return Path(values[0])
    if any("=" not in v for v in values):
        raise ConfigError("--parallel takes one table file, or LANG=FILE for every language")
    return {lang: Path(path) for lang, path in parse_assignments(values, "--parallel").items()}


def parse_weights(values: list[str] | None, option: str) -> dict[str, float]:
    from crossling.commands.train_task import parse_assignments
    from crossling.errors import ConfigError

    out = {}
    for lang, value in parse_assignments(values, option).items():
        try:
            out[lang] = float(value)
        except ValueError:
            raise ConfigError(f"{option}: weight of {lang!r} is not a number: {value!r}") from None
    return out


def run(args: argparse.Namespace) -> int:
    from crossling.multisource import compute_harmony

    weights = compute_harmony(
        list(args.target),
        list(args.sources),
        parse_parallel(args.parallel),
        config=args.config,
        temperature=args.temperature,
        num_parallel=args.num_parallel,
        given=parse_weights(args.weight, "--weight"),
        base=args.base,
        batch_size=args.batch_size,
        max_length=args.max_length,
        device=resolve_device(args.device),
    )
    path = weights.save_pretrained(args.out)
    print(weights.table())
    print(f"wrote {path}")
    plot = args.plot or (path.with_suffix(".svg") if len(weights.targets) > 1 else None)
    if plot:
        from crossling.artifacts import write_text_atomic

        write_text_atomic(plot, weights.heatmap_svg())
        print(f"wrote {plot}")
    return 0
