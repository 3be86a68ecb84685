"""Render `benchmarks/results/*.json` as the README's results section (between the results markers).

    python benchmarks/report.py            # rewrite the section in README.md
    python benchmarks/report.py --check    # exit 1 if README.md is not what the result files say

Every number in the README's results section comes from a file in `benchmarks/results/`; a benchmark
without a result file is listed as not measured rather than left out silently.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
START, END = "<!-- results -->", "<!-- /results -->"


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _when(result: dict) -> str:
    machine = result.get("machine") or {}
    date = (machine.get("date") or result.get("date") or "")[:10]
    cpus = machine.get("cpu_count")
    return f"measured {date}" + (f" on {cpus} CPU cores" if cpus else "")


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def vocab_search(r: dict) -> str:
    rows = []
    for run in r["runs"]:
        chosen = run["chosen_size"]
        rows.append(
            [
                run["corpus"],
                run["scenario"],
                f"{chosen['naive']} / {chosen['fast']}",
                f"{run['median_seconds']['naive']:.1f}",
                f"{run['median_seconds']['fast']:.1f}",
                f"{run['speedup_fast']:.2f}×",
            ]
        )
    table = _table(
        ["corpus", "search", "size naive / fast", "naive s", "fast s", "speed-up"],
        rows,
    )
    return (
        f"**Vocabulary size search** (`bench_vocab_search.py`, {_when(r)}; median of {r['repeats']}). "
        "Both modes choose the same size with the same trace. The issue's goal of a 4× speed-up is "
        "**not met**: SentencePiece training is over 80 % of the time, one full training per size "
        "cannot be shared through its API, and on 2 cores only two sizes train at once.\n\n" + table
    )


def init_memory(r: dict) -> str:
    rows = [
        [
            run["target_vocab_size"],
            run["mode"],
            f"{run['wall_s']:.0f}",
            f"{run['extra_mb']:.0f}",
            f"{run['dense_matrix_would_be_mb'] / 1024:.1f} GB",
        ]
        for run in r["runs"]
    ]
    verdict = "all under" if r.get("all_under_limit") else "NOT all under"
    return (
        f"**Embedding init memory** against the 250,037-row e5-small vocabulary (`bench_init_memory.py`, "
        f"{_when(r)}): peak extra memory {verdict} the {r.get('limit_extra_mb', 2048)} MB bound "
        "(cold = fastText trained, warm = fastText cached).\n\n"
        + _table(["target vocab", "run", "wall s", "extra MB", "dense matrix would be"], rows)
    )


def init_quality(r: dict) -> str:
    methods = ["base", *r["settings"]["methods"]]
    header = ["lang", "test tokens copied by overlap"] + [m.replace("unibridge/", "ub/") for m in methods]
    rows = []
    for entry in r["results"]:
        scores = entry["methods"]
        origin = scores.get("overlap", {}).get("tatoeba_token_origin", {})
        lang = entry["lang"] + (" *" if entry["corpus"].get("transductive") else "")
        rows.append(
            [lang, f"{origin.get('lexical', 0):.0%}"]
            + [f"{scores[m]['acc_t2e']:.3f}" if m in scores else "" for m in methods]
        )
    return (
        f"**Initialisation quality before any training** (`bench_init_quality.py`, {_when(r)}): Tatoeba "
        "retrieval accuracy (target → English) of the unchanged e5-small encoder through a new 10k "
        "tokenizer and each method's embeddings; `base` is e5-small's own tokenizer, the ceiling. "
        "(* corpus = UDHR + the unlabelled Tatoeba target side, transductive.) The expected order "
        "holds only as *everything ≫ random*: unibridge (either alignment), FOCUS and plain overlap "
        "are within ±0.03 of each other, because e5-small's 250k vocabulary already shares 63–88 % of "
        "the test tokens with the new one, and the remaining rows (sparsemax mixtures, mean support "
        "~180 base rows, or fitted-normal noise) move a mean-pooled sentence vector little; semantic "
        "mutual-nearest-neighbour pairs cover under 0.5 % of test tokens. The gap the paper's "
        "ablation shows appears after training, see the adaptation table.\n\n" + _table(header, rows)
    )


def adapt(r: dict) -> str:
    parts = [
        f"**Language adaptation** of e5-small to Guarani with a new 8,000-piece vocabulary "
        f"(`bench_adapt.py`, {_when(r)})."
    ]
    if t := r.get("throughput"):
        tps = t["tokens_per_second"]
        verdict = "meets" if t["passed"] else "does **not** meet"
        design = f" ({t['design']}, {t['pairs']} batches)" if "design" in t else ""
        parts.append(
            f"Training throughput MLM only {tps['mlm']:.0f} tokens/s, MLM + KL {tps['mlm_kl']:.0f} "
            f"tokens/s{design}: KL overhead {t['kl_overhead']:.0%}, which {verdict} the < 35 % goal."
        )
    if q := r.get("quality"):
        rows = [
            [m, v["perplexity_after_1_step"], v["perplexity"], v["seconds"]] for m, v in q["results"].items()
        ]
        verdict = (
            "a clear gap in favour of UniBridge init"
            if q["holds"]
            else "only a small gap in favour of UniBridge init at this budget (the paper's ablation "
            "predicts a large one); after one step UniBridge is worse (both start with the same fresh "
            "MLM head; we have not found out why the copied rows start worse)"
        )
        parts.append(
            f"Held-out MLM perplexity after {q['steps']} steps (batch 16, same tokenizer, same held-out "
            f"lines): random / unibridge = {q['perplexity_ratio_random_over_unibridge']}, {verdict}.\n\n"
            + _table(["init", "perplexity after 1 step", f"after {q['steps']} steps", "seconds"], rows)
        )
    return "\n".join(parts)


def tasks(r: dict) -> str:
    title = {
        "panx": "PAN-X: NER task adapter trained on English, zero-shot ar/ru/ja/zh",
        "conll": "CoNLL-2003 English → CoNLL-2002 Spanish/Dutch",
    }.get(r["setup"], r["setup"])
    return (
        f"**Zero-shot NER, {title}** (`bench_tasks_zero_shot.py`, {_when(r)}): no adversary vs Keung et "
        f"al. vs gradient reversal; {r['note']}. Keung et al. report the median cosine rising from about "
        "0.73 to 0.9+ with mBERT; e5-small, trained for cross-lingual similarity, starts at 0.91–0.94, so "
        "there is little room, and one seed per method on a CPU budget (400 steps, 5,000 sentences).\n\n"
        f"{r['table'].strip()}"
    )


def multisource(r: dict) -> str:
    parts = [f"**Multi-source inference** on e5-small (`bench_multisource.py`, {_when(r)})."]
    if t := r.get("throughput"):
        one, single = t["one_pass"], t["single_source_models"]
        parts.append(
            f"Throughput with 5 NLI task adapters, {one['pairs']} AmericasNLI pairs, "
            f"batch {one['batch_size']}: "
            f"one pass (`Stack(lang, Parallel(...))`) {one['pairs_per_s']} pairs/s and "
            f"{one['peak_rss_mb']:.0f} MB vs 5 single-source models in turn "
            f"{single['pairs_per_s']} pairs/s and "
            f"{single['peak_rss_mb']:.0f} MB: ×{t['speedup_one_pass_over_single']} speed, "
            f"×{t['memory_ratio_single_over_one_pass']} less memory, identical combined logits "
            f"(max difference {t['combined_logits_max_abs_difference']}). `Parallel` replicates the batch "
            "after the first layer, so the gain is memory more than time."
        )
    if w := r.get("weights"):
        ks = sorted(w["by_k"], key=int)
        k = ks[0]
        block = w["by_k"][k]
        rows = []
        for target, e in block["targets"].items():
            rows.append(
                [
                    target,
                    e["nearest"],
                    f"{e['max_over_min_tau_1']:.3f}",
                    f"{e['informative_temperature']:.3f}",
                ]
                + [f"{e['weights_tau_informative'][s]:.2f}" for s in ("en", "es", "ar", "ru", "zh")]
            )
        parts.append(
            f"Harmony weights for the 10 AmericasNLI targets from K={k} exact XNLI translations (e5-small "
            "itself; no language adapters): at τ=1 they are uniform to within a max/min ratio of "
            f"{block['largest_max_over_min_at_tau_1']:.3f} — distances are ~2.1–2.5, so softmax(1/d) cannot "
            "separate them. The τ at which the nearest source weighs 2× the farthest is ~0.03–0.12; "
            "Spanish is "
            f"the nearest source for {block['nearest_source_counts'].get('es', 0)} of 10 targets "
            f"(K={ks[-1]}: {w['by_k'][ks[-1]]['nearest_source_counts'].get('es', 0)} of 10). "
            "Weights at that τ:"
            "\n\n"
            + _table(
                ["target", "nearest", "max/min at τ=1", "informative τ", "en", "es", "ar", "ru", "zh"], rows
            )
        )
    return "\n".join(parts)


def distill(r: dict) -> str:
    return f"**Distillation** (`bench_distill.py`, {_when(r)}): see `benchmarks/results/distill.json`."


SECTIONS: list[tuple[str, Callable[[dict], str]]] = [
    ("vocab_search", vocab_search),
    ("init_memory", init_memory),
    ("init_quality", init_quality),
    ("adapt", adapt),
    ("multisource", multisource),
    ("distill", distill),
]


def render() -> str:
    blocks, missing = [], []
    for name, fn in SECTIONS:
        result = _load(name)
        if result is None:
            missing.append(f"`{name}`")
            continue
        blocks.append(fn(result))
    for setup in ("panx", "conll"):
        if (result := _load(f"tasks_{setup}")) is not None:
            blocks.append(tasks(result))
        else:
            missing.append(f"`tasks_{setup}`")
    if missing:
        blocks.append("Not measured yet: " + ", ".join(missing) + ".")
    return "\n\n".join(blocks)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail if README.md is out of date")
    args = parser.parse_args()
    text = README.read_text(encoding="utf-8")
    if START not in text or END not in text:
        sys.exit(f"README.md has no {START} ... {END} section")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    updated = f"{head}{START}\n{render()}\n{END}{tail}"
    if args.check:
        if updated != text:
            print(
                "README.md results section is out of date: run python benchmarks/report.py", file=sys.stderr
            )
            return 1
        return 0
    README.write_text(updated, encoding="utf-8")
    print("README.md results section updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
