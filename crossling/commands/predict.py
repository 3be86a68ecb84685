"""`crossling predict`: multi-source prediction for a target language on a file, streamed in batches."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

EXAMPLES = """\
examples:
  crossling predict --pack packs/gn --task-adapters task/nli-en task/nli-es task/nli-ar \\
      --weights harmony/gn.json --input americasnli/dev/gn.tsv --out gn.pred.tsv
  crossling predict --pack packs/gn --task-adapters task/nli-* --parallel dev_aligned_with_xnli_dev.tsv \\
      --input pairs.tsv --out gn.pred.jsonl --output-format jsonl
  crossling predict --pack packs/amh --task-adapters task/ner-* --strategy uniform --input amh.txt
  crossling predict --pack packs/amh --task-adapters task/ner-en task/ner-ar --weights en=0.7 ar=0.3 \\
      --input masakhaner/amh/dev.txt --out amh.tags.tsv

Inputs: tagging tasks read CoNLL-U, XTREME/IOB token-per-line files, unlabelled ones (`tokens`: one
word a line, a blank line between sentences) or plain text (one sentence a line, split on
whitespace); pair tasks read XNLI/PAWS-X/AmericasNLI TSV or two-column TSV (`pairs`).
Outputs: token<TAB>tag<TAB>probability per word (blank line between sentences), or for pairs a TSV
with a header (text_a, text_b, label, one probability column per label); --output-format jsonl
writes one JSON object per input. When the input has gold labels, the score is printed at the end.
"""

TAGGING_FORMATS = ("text", "tokens", "xtreme", "iob", "conllu")
PAIR_FORMATS = ("nli", "pawsx", "americasnli", "pairs")


def register(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    import typing

    from crossling.commands.harmony import add_device_argument, add_parallel_arguments
    from crossling.config import HarmonyConfig

    strategies = typing.get_args(typing.get_type_hints(HarmonyConfig)["strategy"])

    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pack", required=True, type=Path, help="LanguagePack of the target language")
    p.add_argument(
        "--task-adapters", required=True, nargs="+", type=Path, metavar="DIR", help="one per source language"
    )
    p.add_argument("--input", required=True, type=Path, help="file to predict for")
    p.add_argument(
        "--format", default="auto", choices=("auto", *TAGGING_FORMATS, *PAIR_FORMATS), help="input format"
    )
    p.add_argument(
        "--encoding", default="utf-8", help="text encoding of the input: utf-8 (default), latin-1, or auto"
    )
    p.add_argument("--out", type=Path, help="predictions file (default: standard output)")
    p.add_argument(
        "--output-format",
        choices=("tsv", "jsonl"),
        default="tsv",
        help="tsv: word<TAB>tag<TAB>probability or a pairs table; jsonl: one JSON object per input",
    )
    p.add_argument(
        "--strategy",
        choices=strategies,
        help="how to combine the sources' logits (default harmony; given with LANG=W --weights)",
    )
    p.add_argument(
        "--weights",
        nargs="+",
        metavar="FILE | LANG=W",
        help="HarmonyWeights JSON (from `crossling harmony`), or explicit weights per source language",
    )
    p.add_argument(
        "--source-packs",
        nargs="+",
        type=Path,
        metavar="PACK",
        help="with --parallel: source packs (default: the packs the task adapters were trained on)",
    )
    p.add_argument("--english", default="en", help="source language code used by --strategy english")
    add_parallel_arguments(p, required=False)
    p.add_argument("--base", help="where to load the base model from (default: as recorded)")
    p.add_argument("--batch-size", type=int, default=32, help="inputs per forward pass (default 32)")
    add_device_argument(p)
    p.add_argument("--chunk-size", type=int, default=1024, help="records read and sorted by length at a time")
    p.add_argument("--max-length", type=int, help="maximum tokens (default: the adapters' training setting)")
    p.add_argument("--limit", type=int, help="predict the first N inputs only")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


# ---------------------------------------------------------------------- input
def choose_format(path: Path, task: str, fmt: str) -> str:
    from crossling.data import guess_format
    from crossling.errors import DataFormatError
    from crossling.tasks.labels import is_tagging

    allowed = TAGGING_FORMATS if is_tagging(task) else PAIR_FORMATS
    if fmt == "auto":
        try:
            fmt = guess_format(path)
        except DataFormatError as err:
            if is_tagging(task) or "tab-separated" not in err.reason:
                raise
            fmt = "pairs"
        if not is_tagging(task) and fmt not in allowed and fmt in ("xtreme", "tsv"):
            fmt = "pairs"  # unlabelled two-column TSV looks like other things to the guesser
        if is_tagging(task) and fmt == "text" and _one_word_per_line(path):
            fmt = "tokens"  # else every word would be tagged as a sentence of its own
    if fmt not in allowed:
        raise DataFormatError(
            path, None, f"a {fmt!r} file has no input for task {task}; expected one of {', '.join(allowed)}"
        )
    return fmt


def _one_word_per_line(path: Path, sniff: int = 200) -> bool:
    """Whether the file's first lines are single words in blank-line-separated groups of several."""
    import itertools

    from crossling.data._io import iter_lines

    lines = [line.strip() for _, line in itertools.islice(iter_lines(path, errors="replace"), sniff)]
    words = [line for line in lines if line]
    groups = sum(1 for a, b in itertools.pairwise(["", *lines]) if not a and b)
    return bool(words) and all(len(w.split()) == 1 for w in words) and "" in lines and len(words) > groups


def _word_groups(path: Path, encoding: str = "utf-8") -> Iterator[dict[str, Any]]:
    from crossling.data._io import iter_lines, require_records

    def groups() -> Iterator[dict[str, Any]]:
        words: list[str] = []
        for _, line in iter_lines(path, encoding):
            if line.strip():
                words.append(line.strip())
            elif words:
                yield {"tokens": words}
                words = []
        if words:
            yield {"tokens": words}

    return require_records(groups(), path, "tokens")


def read_inputs(path: Path, task: str, fmt: str, encoding: str = "utf-8") -> Iterator[dict[str, Any]]:
    """Records for the predictor, read lazily: {"tokens"[, "tags"]} or {"text_a", "text_b"[, "label"]}."""
    from crossling.data import read
    from crossling.data._io import iter_tsv, require_records
    from crossling.errors import DataFormatError

    if fmt == "text":
        for record in read(path, "text", encoding=encoding):
            yield {"tokens": record["text"].split()}
    elif fmt == "tokens":
        yield from _word_groups(path, encoding)
    elif fmt in TAGGING_FORMATS:
        for record in read(path, fmt, encoding=encoding):
            yield {"tokens": list(record["tokens"]), "tags": list(record["tags"])}
    elif fmt == "pairs":

        def rows() -> Iterator[dict[str, Any]]:
            for lineno, row in iter_tsv(path, encoding=encoding):
                if len(row) not in (2, 3):
                    raise DataFormatError(
                        path, lineno, f"expected text_a<TAB>text_b[<TAB>label], found {len(row)} columns"
                    )
                yield {"text_a": row[0], "text_b": row[1], **({"label": row[2]} if len(row) == 3 else {})}

        yield from require_records(rows(), path, "pairs")
    else:
        a, b = ("sentence1", "sentence2") if fmt == "pawsx" else ("premise", "hypothesis")
        for record in read(path, fmt, labels=None, encoding=encoding):
            yield {"text_a": record[a], "text_b": record[b], "label": record["label"]}


def _estimate_total(path: Path, fmt: str, limit: int | None) -> int | None:
    from crossling.data import count_lines

    if fmt in TAGGING_FORMATS and fmt != "text":
        return limit
    total = count_lines(path) - (fmt == "americasnli")
    return min(total, limit) if limit else total


# ---------------------------------------------------------------------- output
def _clean(text: str) -> str:
    return text.replace("\t", " ").replace("\n", " ")


def write_chunk(out: TextIO, records, prediction, output_format: str, tagging: bool, first: bool) -> None:
    names = prediction.label_names
    for record, label, probs in zip(records, prediction.labels, prediction.probabilities, strict=True):
        if output_format == "jsonl":
            item: dict[str, Any] = (
                {"tokens": record["tokens"], "tags": label} if tagging else {**_pair(record), "label": label}
            )
            if tagging:
                item["probabilities"] = [
                    None if p is None else dict(zip(names, p, strict=True)) for p in probs
                ]
            else:
                item["probabilities"] = dict(zip(names, probs, strict=True))
            out.write(json.dumps(item, ensure_ascii=False) + "\n")
        elif tagging:
            for word, tag, p in zip(record["tokens"], label, probs, strict=True):
                shown = "" if p is None else f"{p[names.index(tag)]:.4f}"
                out.write(f"{_clean(word)}\t{tag}\t{shown}\n")
            out.write("\n")
        else:
            if first:
                out.write("\t".join(["text_a", "text_b", "label", *(f"p_{n}" for n in names)]) + "\n")
                first = False
            cells = [_clean(record["text_a"]), _clean(record["text_b"]), label, *(f"{x:.4f}" for x in probs)]
            out.write("\t".join(cells) + "\n")


def _pair(record: dict[str, Any]) -> dict[str, Any]:
    return {"text_a": record["text_a"], "text_b": record["text_b"]}


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[TextIO]:
    """Standard output, or `path` written through a temporary sibling renamed at the end."""
    import os
    import tempfile

    if path is None:
        yield sys.stdout
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yield fh
        from crossling.artifacts import published_permissions

        published_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------- command
def _weights_option(values: list[str] | None):
    from crossling.commands.harmony import parse_weights
    from crossling.errors import ConfigError

    if not values:
        return None
    if len(values) == 1 and "=" not in values[0]:
        return Path(values[0])
    if any("=" not in v for v in values):
        raise ConfigError("--weights takes one HarmonyWeights file, or LANG=WEIGHT for each source")
    return parse_weights(values, "--weights")


def run(args: argparse.Namespace) -> int:
    import itertools

    from tqdm.auto import tqdm

    from crossling.artifacts import TaskAdapter
    from crossling.commands.harmony import parse_parallel, resolve_device
    from crossling.eval.metrics import PRIMARY_METRIC, task_metrics
    from crossling.multisource import MultiSourcePredictor
    from crossling.tasks.labels import is_tagging

    # (--batch-size, --chunk-size and --limit below 1 are refused by crossling.cli for every command)
    # metadata only: a bad input file fails before any model is loaded
    adapters = [TaskAdapter.from_pretrained(path) for path in args.task_adapters]
    fmt = choose_format(args.input, adapters[0].task, args.format)
    predictor = MultiSourcePredictor.from_pretrained(
        args.pack,
        adapters,
        weights=_weights_option(args.weights),
        parallel=parse_parallel(args.parallel) if args.parallel else None,
        source_packs=args.source_packs,
        strategy=args.strategy,
        config=args.config,
        temperature=args.temperature,
        num_parallel=args.num_parallel,
        english=args.english,
        base=args.base,
        max_length=args.max_length,
        batch_size=args.batch_size,
        device=resolve_device(args.device),
    )
    print(f"crossling predict: {predictor.describe()}", file=sys.stderr)
    tagging = is_tagging(predictor.task)
    records = read_inputs(args.input, predictor.task, fmt, args.encoding)
    if args.limit:
        records = itertools.islice(records, args.limit)
    gold_key = "tags" if tagging else "label"
    gold: list[Any] | None = []
    predicted: list[Any] = []
    done = 0
    bar = tqdm(
        total=_estimate_total(args.input, fmt, args.limit),
        desc="predict",
        unit="inputs",
        disable=args.no_progress,
        file=sys.stderr,
        leave=False,
    )
    with _output(args.out) as out, bar:
        stream = predictor.predict_stream(records, batch_size=args.batch_size, chunk_size=args.chunk_size)
        for chunk, prediction in stream:
            write_chunk(out, chunk, prediction, args.output_format, tagging, first=done == 0)
            done += len(chunk)
            bar.update(len(chunk))
            if gold is not None and all(gold_key in r for r in chunk):
                gold.extend(r[gold_key] for r in chunk)
                predicted.extend(prediction.labels)
            else:
                gold = None
    summary = f"predicted {done} inputs"
    unknown = (
        sorted({g for item in gold for g in (item if tagging else [item])} - set(predictor.labels))
        if gold
        else []
    )
    if unknown:  # a score against labels no adapter can predict would mislead (evaluate refuses them)
        shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        summary += f"; not scored: the input's labels {shown} are not among the task adapters' labels"
    elif gold:
        metric = PRIMARY_METRIC[predictor.task]
        score = task_metrics(predictor.task, gold, predicted)[metric]
        summary += f"; {metric} against the input's labels: {100 * score:.1f}"
    if args.out:
        summary += f"; wrote {args.out}"
    print(f"crossling predict: {summary}", file=sys.stderr)
    return 0
