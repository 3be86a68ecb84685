"""`crossling data`: clean a corpus, inspect a labelled or unlabelled data file."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from crossling.data.formats import FORMATS


def register(subparsers: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    """Add the `data` command with its `clean` and `inspect` actions to `subparsers`."""
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")

    clean = actions.add_parser(
        "clean",
        help="clean a one-sentence-per-line corpus (markup, hidden characters, URL/digit/short lines)",
        description=(
            "Clean IN into OUT (UTF-8, one line each) and print how many lines each rule dropped or changed. "
            "OUT is written to a temporary file first and renamed when done, so it may be IN."
        ),
    )
    clean.add_argument("input", metavar="IN", help="corpus, one sentence per line")
    clean.add_argument("output", metavar="OUT", help="cleaned corpus to write")
    clean.add_argument("--min-chars", type=int, default=10, help="drop lines shorter than this (default 10)")
    clean.add_argument(
        "--min-words",
        type=int,
        default=1,
        help="drop lines with fewer words (default 1; keep 1 for zh/ja/th)",
    )
    clean.add_argument(
        "--max-digit-ratio",
        type=float,
        default=0.7,
        help="drop lines with more digits than this (default 0.7)",
    )
    clean.add_argument("--keep-markup", action="store_true", help="do not strip HTML/wiki markup")
    clean.add_argument(
        "--keep-hidden", action="store_true", help="do not remove control/zero-width characters"
    )
    clean.add_argument("--encoding", default="utf-8", help="input encoding, or 'auto' (default utf-8)")
    clean.add_argument("--json", action="store_true", help="print the report as JSON")
    clean.set_defaults(func=_clean)

    inspect = actions.add_parser(
        "inspect",
        help="read a data file and print its record count, label counts and first record",
        description="Read PATH with the reader for its format; malformed input is reported as FILE:LINE.",
    )
    inspect.add_argument("path", metavar="PATH")
    inspect.add_argument(
        "--format",
        default="auto",
        choices=["auto", *FORMATS],
        help="file format (default: guess from the name and first lines)",
    )
    inspect.add_argument("--encoding", default=None, help="input encoding, e.g. latin-1 or auto")
    inspect.add_argument("--limit", type=int, default=None, help="read at most this many records")
    inspect.set_defaults(func=_inspect)

    def no_action(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    parser.set_defaults(func=no_action)
    return parser


def _clean(args: argparse.Namespace) -> int:
    from crossling.data.cleaning import clean_file

    report = clean_file(
        args.input,
        args.output,
        encoding=args.encoding,
        min_chars=args.min_chars,
        min_words=args.min_words,
        max_digit_ratio=args.max_digit_ratio,
        markup=not args.keep_markup,
        hidden=not args.keep_hidden,
    )
    if report.kept == 0:  # an empty corpus fails later, far from its cause: say so here
        Path(args.output).unlink(missing_ok=True)
        print(
            f"crossling data: error: no line of {args.input} was kept ({report.total} read); "
            "check the encoding and the filter options",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        print(f"wrote {report.kept} of {report.total} lines to {args.output}")
        print(report)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    import itertools

    from crossling.data.formats import guess_format, read

    fmt = guess_format(args.path) if args.format == "auto" else args.format
    options = {"encoding": args.encoding} if args.encoding else {}
    records = read(args.path, fmt, **options)
    if args.limit is not None:
        records = itertools.islice(records, args.limit)
    count, first = 0, None
    labels: Counter[str] = Counter()
    label_key = None
    for record in records:
        if first is None:
            first = record
            label_key = next((k for k in ("label", "tags") if k in record), None)
        count += 1
        if label_key == "tags":
            labels.update(record["tags"])
        elif label_key:
            labels[record[label_key]] += 1
    print(f"format: {fmt}")
    print(f"records: {count}")
    if label_key:
        print(f"{label_key} counts: " + ", ".join(f"{k} {v}" for k, v in labels.most_common()))
    print("first record: " + json.dumps(first, ensure_ascii=False))
    return 0
