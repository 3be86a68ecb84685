"""`crossling evaluate`: score a task adapter on labelled data, per language, offline."""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = """\
examples:
  crossling evaluate --task-adapter task/ner-en --pack packs/en --data panx/dev-en.tsv --lang en
  crossling evaluate --task-adapter task/ner-en --data de=dev-de.tsv es=dev-es.tsv \\
      --pack de=packs/de es=packs/es --out results/ner-en
  crossling evaluate --task-adapter task/ner-en-ft --data zh=dev-zh.tsv --to-iob2 --out results/ft
  crossling evaluate --task-adapter task/ner-en --data es=esp.testa --to-iob2 --map-label B-MISC=O I-MISC=O

NER: seqeval entity F1 (IOB2, default mode); POS: word accuracy; NLI/paraphrase: accuracy.
With --out, writes OUT.json and OUT.md; the Markdown table is printed either way.
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
        "--task-adapter", required=True, type=Path, help="TaskAdapter directory (from crossling train-task)"
    )
    p.add_argument(
        "--data",
        required=True,
        nargs="+",
        metavar="[LANG=]FILE",
        help="labelled file(s), one per language; gold labels outside the adapter's label map are refused",
    )
    p.add_argument("--lang", help="language of a --data file given without LANG=")
    p.add_argument(
        "--pack",
        nargs="+",
        metavar="[LANG=]DIR",
        help="LanguagePack to predict with: one for all, or one per language (default: the training pack)",
    )
    p.add_argument("--task", choices=("ner", "pos", "nli", "paraphrase"), help="check the adapter's task")
    p.add_argument("--base", help="where to load the base model from (default: as recorded)")
    p.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    p.add_argument("--batch-size", type=int, default=32, help="sentences per forward pass (default 32)")
    p.add_argument("--max-length", type=int, help="maximum tokens (default: the training setting)")
    p.add_argument("--to-iob2", action="store_true", help="convert IOB1 NER tags to IOB2 while reading")
    p.add_argument(
        "--encoding",
        default="utf-8",
        help="text encoding of the data files: utf-8 (default), latin-1 (CoNLL-2002's originals), or auto",
    )
    p.add_argument("--limit", type=int, help="evaluate the first N examples of each file only")
    p.add_argument(
        "--map-label",
        nargs="+",
        metavar="GOLD=LABEL",
        help="rename gold labels before scoring, e.g. B-MISC=O I-MISC=O when the target data has a type "
        "the adapter never saw (recorded in the report)",
    )
    p.set_defaults(func=run)
    return p


def _data(values: list[str], lang: str | None) -> dict[str, str]:
    from crossling.commands.train_task import parse_assignments
    from crossling.errors import ConfigError

    named = [v for v in values if "=" in v]
    plain = [v for v in values if "=" not in v]
    if len(plain) > 1 or (plain and not lang):
        raise ConfigError("give --data as LANG=FILE, or one FILE together with --lang")
    out = parse_assignments(named, "--data")
    if plain:
        if lang in out:
            raise ConfigError(f"--data: language {lang!r} given twice")
        out[lang] = plain[0]
    return out


def _label_mapping(values: list[str] | None) -> dict[str, str] | None:
    from crossling.errors import ConfigError

    mapping: dict[str, str] = {}
    for value in values or []:
        gold, sep, label = value.partition("=")
        if not sep or not gold or not label:
            raise ConfigError(f"--map-label expects GOLD=LABEL, got {value!r}")
        mapping[gold] = label
    return mapping or None


def run(args: argparse.Namespace) -> int:
    from crossling.commands.train_task import parse_assignments
    from crossling.errors import ConfigError
    from crossling.eval import evaluate

    data = _data(args.data, args.lang)
    pack = None
    if args.pack:
        if len(args.pack) == 1 and "=" not in args.pack[0]:
            pack = args.pack[0]
        else:
            if any("=" not in v for v in args.pack):
                raise ConfigError("with several --pack values, give each as LANG=DIR")
            pack = parse_assignments(args.pack, "--pack")
    report = evaluate(
        args.task_adapter,
        data,
        pack=pack,
        base=args.base,
        task=args.task,
        batch_size=args.batch_size,
        max_length=args.max_length,
        to_iob2=args.to_iob2,
        encoding=args.encoding,
        limit=args.limit,
        map_labels=_label_mapping(args.map_label),
    )
    print(report.to_markdown())
    if args.out:
        json_path, md_path = report.save(args.out)
        print(f"wrote {json_path} and {md_path}")
    return 0
