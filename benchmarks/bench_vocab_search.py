"""Vocabulary size search: naive (reference procedure) against fast mode, on real text.

    python benchmarks/bench_vocab_search.py [--repeats 3] [--quick]

Corpora: Amharic New Testament (7,656 verses) and the Guarani side of the AmericasNLP 2021
Guarani-Spanish training data (26,032 lines), from $CROSSLING_DATA or ../shared/data.
Scenarios: the paper's search (start 7000, step 1000, max 60000, ε = 5), which both corpora
support (it stops at 8000 on both); and, on Amharic, the same grid with ε = 0, which climbs until
the corpus cannot support the next size (12143 pieces at most), the capped path.
Naive and fast runs alternate, so load from other processes hits both;
the median of `--repeats` runs is reported. Every fast run must choose the same size, with the
same trace and the same model bytes, as the naive run (the benchmark fails otherwise).

Also measured: where the naive time goes (one SentencePiece training vs the reference ALP loop
vs the vectorised ALP), and fast mode with one worker (vectorised ALP only, no parallel training).
Writes benchmarks/results/vocab_search.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import data_root, write_result  # noqa: E402


def corpora(root: Path) -> dict[str, list[str]]:
    from crossling.data import read_bible, read_text

    return {
        "amh (Amharic NT, bible_corpus)": [
            r["text"] for r in read_bible(root / "bible_corpus" / "Amharic-NT.verses.tsv")
        ],
        "gn (Guarani, AmericasNLP 2021 train.gn)": [
            r["text"] for r in read_text(root / "americasnlp2021_parallel" / "guarani-spanish" / "train.gn")
        ],
    }


def same(naive, fast) -> bool:
    return (
        fast.chosen_size == naive.chosen_size
        and fast.stop_reason == naive.stop_reason
        and [s.size for s in fast.trace] == [s.size for s in naive.trace]
        and all(abs(a.alp - b.alp) <= 1e-9 * abs(a.alp) for a, b in zip(naive.trace, fast.trace, strict=True))
        and fast.model_proto == naive.model_proto
    )


def run_scenario(lines: list[str], params: dict, repeats: int, workers: int) -> dict:
    import resource

    from crossling.vocab import search_vocab_size

    times = {"naive": [], "fast": [], "fast_1_worker": []}
    cpu = {mode: [] for mode in times}
    results = {}
    for _ in range(repeats):
        for mode, kwargs in (
            ("naive", {"naive": True}),
            ("fast", {"workers": workers}),
            ("fast_1_worker", {"workers": 1}),
        ):
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            t0 = time.perf_counter()
            result = search_vocab_size(lines, progress=False, **params, **kwargs)
            times[mode].append(time.perf_counter() - t0)
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            cpu[mode].append((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
            if mode in results and results[mode].model_proto != result.model_proto:
                raise SystemExit(f"{mode}: two runs gave different models")
            results[mode] = result
    naive = results["naive"]
    for mode in ("fast", "fast_1_worker"):
        if not same(naive, results[mode]):
            raise SystemExit(f"{mode} differs from naive: {results[mode].to_dict()} vs {naive.to_dict()}")
    median = {mode: statistics.median(t) for mode, t in times.items()}
    return {
        "params": params,
        "chosen_size": {"naive": naive.chosen_size, "fast": results["fast"].chosen_size},
        "stop_reason": naive.stop_reason,
        "max_feasible_size": naive.max_feasible_size,
        "same_choice_trace_and_model": True,
        "trace": [s.to_dict() for s in naive.trace],
        "seconds": {mode: [round(t, 3) for t in ts] for mode, ts in times.items()},
        "median_seconds": {mode: round(t, 3) for mode, t in median.items()},
        "median_cpu_seconds": {mode: round(statistics.median(c), 3) for mode, c in cpu.items()},
        "speedup_fast": round(median["naive"] / median["fast"], 2),
        "speedup_fast_1_worker": round(median["naive"] / median["fast_1_worker"], 2),
        "sizes_trained": {"naive": len(naive.trace) + (2 if naive.stop_reason == "capped" else 0)},
    }


def breakdown(lines: list[str], size: int) -> dict:
    """Where one naive step's time goes: training vs ALP (reference loop vs vectorised)."""
    import resource
    import tempfile

    import sentencepiece as spm

    from crossling.vocab import average_log_probability, prepare_corpus, reference_alp, train_unigram

    with tempfile.TemporaryDirectory() as tmp:
        prepared = prepare_corpus(lines, tmp)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        proto = train_unigram(prepared.path, size)
        train_s = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        sp = spm.SentencePieceProcessor(model_proto=proto)
        t0 = time.perf_counter()
        with open(prepared.path, encoding="utf-8") as f:
            ref = reference_alp(f.readlines(), sp.encode_as_ids, sp.get_piece_size())
        ref_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        fast = average_log_probability(sp.encode(prepared.lines, num_threads=os.cpu_count() or 1))
        fast_s = time.perf_counter() - t0
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {
        "size": size,
        "train_seconds": round(train_s, 3),
        "train_cpu_seconds": round(cpu, 3),
        "alp_reference_loop_seconds": round(ref_s, 3),
        "alp_vectorised_seconds": round(fast_s, 3),
        "alp_difference": abs(ref - fast),
        "training_share_of_naive_step": round(train_s / (train_s + ref_s), 3),
    }


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each mode per scenario (median)")
    parser.add_argument("--quick", action="store_true", help="paper scenario only, one repeat")
    parser.add_argument("--workers", type=int, default=None, help="fast-mode workers (default min(2, CPUs))")
    args = parser.parse_args()
    workers = args.workers or max(1, min(2, os.cpu_count() or 1))
    repeats = 1 if args.quick else args.repeats

    paper = {"start": 7000, "step": 1000, "max_size": 60000, "epsilon": 5.0}
    scenarios = {"paper (7000/1000/60000, eps 5)": (paper, None)}
    if not args.quick:
        # eps 0 never converges: the search climbs until the corpus cannot support the next size
        # (Amharic: 12143 pieces), the path where the reference retrains the previous size.
        scenarios["to the corpus cap (7000/1000/60000, eps 0)"] = ({**paper, "epsilon": 0.0}, "amh")

    load_before = os.getloadavg()
    runs = []
    for name, lines in corpora(data_root()).items():
        for scenario, (params, only) in scenarios.items():
            if only and not name.startswith(only):
                continue
            print(f"{name} | {scenario}: {len(lines)} sentences ...", flush=True)
            row = {"corpus": name, "scenario": scenario, "n_sentences": len(lines)}
            row.update(run_scenario(lines, params, repeats, workers))
            row["breakdown_at_start_size"] = breakdown(lines, params["start"])
            runs.append(row)
            med = row["median_seconds"]
            print(
                f"  chosen {row['chosen_size']['naive']} (naive) = {row['chosen_size']['fast']} (fast), "
                f"{row['stop_reason']}, {len(row['trace'])} sizes | naive {med['naive']:.2f} s, "
                f"fast {med['fast']:.2f} s ({row['speedup_fast']}x), "
                f"fast 1 worker {med['fast_1_worker']:.2f} s ({row['speedup_fast_1_worker']}x)",
                flush=True,
            )
    write_result(
        "vocab_search",
        {
            "what": "UniBridge vocabulary size search, naive reference procedure vs fast mode (same result)",
            "repeats": repeats,
            "fast_workers": workers,
            "spm_train_threads": 16,
            "load_average_before_after": [load_before, os.getloadavg()],
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
