"""Multi-source inference on multilingual-e5-small: one-pass throughput, and AmericasNLI harmony weights.

1. Throughput. Five NLI task adapters (sources en es ar ru zh; random adapter and head weights: speed
   does not depend on what they learnt) over a zero-step target pack (gn, base vocabulary). The same
   length-sorted, pre-tokenised batches of AmericasNLI gn dev pairs go through
     one-pass   MultiSourcePredictor: Stack(gn, Parallel(5 task adapters)), one forward per batch;
     single     5 TaskModels (one model each, as `load_task_model` gives them) called in turn;
   both combine the five logits with uniform weights. Each path runs in its own process, so peak
   resident memory is that path's; both write their combined logits and the parent checks they agree.
2. Weights. For each of AmericasNLI's 10 targets, K parallel sentences with en es ar ru zh from
   `dev_aligned_with_xnli_dev.tsv` (the premise/hypothesis of the target's rows and their XNLI
   translations), mean-pooled by e5-small itself (no language adapters are trained here, so every
   "pack" is the base model and the weights measure e5-small's own cross-lingual distances). Weights
   at tau = 1 (the paper), whether they are informative (nearest source >= 2x the farthest), and the
   tau that makes them so for every target.

    python benchmarks/bench_multisource.py --smoke      # ~2 minutes: 32 pairs, 3 targets, K=10
    python benchmarks/bench_multisource.py              # ~6 minutes: 256 pairs, 10 targets, K=10 and 100
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from common import RESULTS, ROOT, data_root, machine, model_dir, peak_rss_mb, write_result

SOURCES = ("en", "es", "ar", "ru", "zh")
TARGETS = ("aym", "bzd", "cni", "gn", "hch", "nah", "oto", "quy", "shp", "tar")
NLI = ["entailment", "neutral", "contradiction"]


# ---------------------------------------------------------------------- artifacts for the throughput run
def build_artifacts(work: Path, base: Path) -> tuple[Path, list[Path]]:
    """A zero-step gn pack and five random NLI task adapters on it (built once, cached in `work`)."""
    from crossling.artifacts import TaskAdapter
    from crossling.language import build_adaptable_model, save_language_pack
    from crossling.tasks import build_pack_model
    from crossling.tasks.model import add_head, task_adapter_config

    pack_dir = work / "pack-gn"
    if not (pack_dir / "crossling.json").is_file():
        torch.manual_seed(0)
        save_language_pack(
            build_adaptable_model(base, "gn"),
            pack_dir,
            language="gn",
            new_vocabulary=False,
            reports={"training": "zero-step (benchmark)"},
        )
    adapters = [work / f"nli-{lang}" for lang in SOURCES]
    if all((a / "crossling.json").is_file() for a in adapters):
        return pack_dir, adapters
    packed = build_pack_model(pack_dir)
    for seed, (lang, out) in enumerate(zip(SOURCES, adapters, strict=True)):
        torch.manual_seed(seed)
        name = f"nli_{lang}"
        packed.model.add_adapter(name, config=task_adapter_config(16))
        add_head(packed.model, name, "nli", NLI)
        with torch.no_grad():
            for n, p in packed.model.named_parameters():
                if f".{name}." in n:
                    p.add_(0.05 * torch.randn_like(p))
        TaskAdapter(
            task="nli",
            labels=NLI,
            source_language=lang,
            base=packed.base_identity,
            language_pack=str(pack_dir),
            config={"mode": "adapter", "adapter_name": name, "training": {"max_length": 128}},
        ).save_pretrained(
            out,
            write_adapter=lambda d, name=name: packed.model.save_adapter(
                str(d), name, with_head=True, use_safetensors=True
            ),
        )
    return pack_dir, adapters


def gn_pairs(n: int) -> list[dict[str, str]]:
    from crossling.data import read_americasnli

    path = data_root() / "americasnli" / "dev" / "gn.tsv"
    records = []
    for record in read_americasnli(path):
        records.append({"text_a": record["premise"], "text_b": record["hypothesis"]})
        if len(records) >= n:
            break
    return records


def child(args: argparse.Namespace) -> None:
    """One path of the throughput comparison, in this process; prints a JSON line."""
    from safetensors.torch import save_file

    from crossling.artifacts import TaskAdapter
    from crossling.multisource import MultiSourcePredictor
    from crossling.tasks import collate, encode_records, load_task_model

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    pack = work / "pack-gn"
    adapters = [TaskAdapter.from_pretrained(work / f"nli-{lang}") for lang in SOURCES]
    started = time.perf_counter()
    if args.child == "one-pass":
        predictor = MultiSourcePredictor.from_pretrained(pack, adapters, strategy="uniform")
        tokenizer = predictor.tokenizer
        forward = predictor.logits
    else:
        models = [load_task_model(ta, pack) for ta in adapters]
        tokenizer = models[0].tokenizer
        weights = torch.full((len(models),), 1.0 / len(models))

        def forward(batch):
            logits = torch.stack([m.logits(batch) for m in models])
            return (weights.view(-1, 1, 1) * logits).sum(0)

    load_seconds = time.perf_counter() - started
    records = gn_pairs(args.pairs)
    features = encode_records("nli", tokenizer, records, None, 128).features
    order = sorted(range(len(features)), key=lambda i: -len(features[i]["input_ids"]))
    batches = [
        (chunk, collate([features[i] for i in chunk], tokenizer.pad_token_id))
        for chunk in (order[s : s + args.batch_size] for s in range(0, len(order), args.batch_size))
    ]
    forward(batches[-1][1])  # warm-up on the shortest batch
    out = torch.empty(len(records), len(NLI))
    started = time.perf_counter()
    for chunk, batch in batches:
        out[chunk] = forward(batch)
    seconds = time.perf_counter() - started
    save_file({"logits": out}, work / f"logits-{args.child}.safetensors")
    result = {
        "path": args.child,
        "pairs": len(records),
        "batch_size": args.batch_size,
        "tokens": int(sum(len(f["input_ids"]) for f in features)),
        "seconds": round(seconds, 3),
        "pairs_per_s": round(len(records) / seconds, 2),
        "load_seconds": round(load_seconds, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "threads": args.threads,
    }
    if args.child == "one-pass":  # end to end, tokenisation included
        started = time.perf_counter()
        predictor.predict_pairs(
            [r["text_a"] for r in records], [r["text_b"] for r in records], batch_size=args.batch_size
        )
        result["end_to_end_pairs_per_s"] = round(len(records) / (time.perf_counter() - started), 2)
    print(json.dumps(result))


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    from safetensors.torch import load_file

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    build_artifacts(work, model_dir("multilingual-e5-small"))
    runs = {}
    for path in ("one-pass", "single"):
        command = [
            sys.executable,
            __file__,
            "--child",
            path,
            "--work",
            str(work),
            "--threads",
            str(args.threads),
        ]
        command += ["--pairs", str(args.pairs), "--batch-size", str(args.batch_size)]
        done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
        runs[path] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{path}: {runs[path]}", flush=True)
    one, single = (load_file(work / f"logits-{p}.safetensors")["logits"] for p in ("one-pass", "single"))
    return {
        "setup": "AmericasNLI gn dev pairs, 5 NLI task adapters (random weights), uniform combination, "
        "same length-sorted pre-tokenised batches; each path in its own process",
        "one_pass": runs["one-pass"],
        "single_source_models": runs["single"],
        "speedup_one_pass_over_single": round(
            runs["one-pass"]["pairs_per_s"] / runs["single"]["pairs_per_s"], 3
        ),
        "memory_ratio_single_over_one_pass": round(
            runs["single"]["peak_rss_mb"] / runs["one-pass"]["peak_rss_mb"], 3
        ),
        "combined_logits_max_abs_difference": float((one - single).abs().max()),
        "same_predictions": bool(torch.equal(one.argmax(-1), single.argmax(-1))),
    }


# ---------------------------------------------------------------------- AmericasNLI weights
def round_down(x: float, digits: int = 2) -> float:
    """`x` rounded down to `digits` significant digits (so a threshold computed from it still holds)."""
    step = 10.0 ** (math.floor(math.log10(x)) - digits + 1)
    return float(f"{math.floor(x / step) * step:.{digits}g}")


def weights(args: argparse.Namespace) -> dict[str, Any]:
    from crossling.multisource import INFORMATIVE_RATIO, collect_parallel, encode_mean_pooled, harmony_weights
    from crossling.tasks import build_pack_model

    torch.set_num_threads(args.threads)
    table = data_root() / "americasnli" / "dev_aligned_with_xnli_dev.tsv"
    packed = build_pack_model(None, model_dir("multilingual-e5-small"))
    targets = TARGETS[: args.targets]
    out: dict[str, Any] = {
        "parallel": str(table.relative_to(data_root())),
        "targets": list(targets),
        "by_k": {},
    }
    for k in args.k:
        started = time.perf_counter()
        plans = {t: collect_parallel(table, t, SOURCES, k)[0] for t in targets}
        sentences = sorted(
            {x for plan in plans.values() for p in plan.values() for x in (*p.target, *p.source)}
        )
        states = dict(
            zip(
                sentences,
                encode_mean_pooled(packed.model, packed.tokenizer, sentences, batch_size=32),
                strict=True,
            )
        )
        per_target: dict[str, Any] = {}
        for target, plan in plans.items():
            t_states = {s: torch.stack([states[x] for x in p.target]) for s, p in plan.items()}
            s_states = {s: torch.stack([states[x] for x in p.source]) for s, p in plan.items()}
            w, report = harmony_weights(t_states, s_states, temperature=1.0)
            per_target[target] = {
                "sentences": min(report["num_sentences"].values()),
                "distances": {s: round(d, 4) for s, d in report["distances"].items()},
                "weights_tau_1": {s: round(x, 4) for s, x in w.items()},
                "max_over_min_tau_1": round(report["max_over_min"], 4),
                "normalised_entropy_tau_1": round(report["normalised_entropy"], 6),
                "nearest": report["nearest"],
                "informative_temperature": report["informative_temperature"],
                "_states": (t_states, s_states),
            }
        # one tau for all targets: the largest at which every target's weights are informative
        tau = min(e["informative_temperature"] for e in per_target.values())
        tau = round_down(tau)
        for entry in per_target.values():
            t_states, s_states = entry.pop("_states")
            w, report = harmony_weights(t_states, s_states, temperature=tau)
            entry["weights_tau_informative"] = {s: round(x, 4) for s, x in w.items()}
            entry["max_over_min_tau_informative"] = round(report["max_over_min"], 3)
            entry["informative_temperature"] = round(entry["informative_temperature"], 5)
        nearest = [e["nearest"] for e in per_target.values()]
        out["by_k"][str(k)] = {
            "targets": per_target,
            "informative_at_tau_1": [
                t for t, e in per_target.items() if e["max_over_min_tau_1"] >= INFORMATIVE_RATIO
            ],
            "largest_max_over_min_at_tau_1": max(e["max_over_min_tau_1"] for e in per_target.values()),
            "tau_informative_for_all": tau,
            "nearest_source_counts": {s: nearest.count(s) for s in SOURCES if s in nearest},
            "seconds": round(time.perf_counter() - started, 1),
        }
        print(f"K={k}: {json.dumps({t: e['weights_tau_1'] for t, e in per_target.items()})}", flush=True)
        sharp = {t: e["weights_tau_informative"] for t, e in per_target.items()}
        print(f"K={k}: tau {tau} -> {json.dumps(sharp)}", flush=True)
    if len(args.k) > 1:
        small, large = (out["by_k"][str(k)]["targets"] for k in (args.k[0], args.k[-1]))
        out["nearest_agrees_between_k"] = {t: small[t]["nearest"] == large[t]["nearest"] for t in targets}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--smoke", action="store_true", help="a couple of minutes, to check the benchmark runs"
    )
    parser.add_argument("--part", choices=("all", "throughput", "weights"), default="all")
    parser.add_argument("--pairs", type=int, help="pairs for the throughput run (default 256; smoke 32)")
    parser.add_argument("--batch-size", type=int, help="default 32; smoke 16")
    parser.add_argument("--targets", type=int, help="how many AmericasNLI targets (default 10; smoke 3)")
    parser.add_argument(
        "--k", type=int, nargs="+", help="parallel sentences per pair (default 10 100; smoke 10)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("/tmp/crossling-bench-multisource"))
    parser.add_argument("--child", choices=("one-pass", "single"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.pairs = args.pairs or (32 if args.smoke else 256)
    args.batch_size = args.batch_size or (16 if args.smoke else 32)
    args.targets = args.targets or (3 if args.smoke else len(TARGETS))
    args.k = args.k or ([10] if args.smoke else [10, 100])
    if args.child:
        child(args)
        return
    started = time.perf_counter()
    result: dict[str, Any] = {"model": "multilingual-e5-small", "smoke": args.smoke}
    if args.part in ("all", "throughput"):
        result["throughput"] = throughput(args)
    if args.part in ("all", "weights"):
        result["weights"] = weights(args)
    result["seconds"] = round(time.perf_counter() - started, 1)
    if args.smoke:
        from crossling.artifacts import write_json_atomic

        path = Path("/tmp/crossling-bench-multisource-smoke.json")
        write_json_atomic(path, {"benchmark": "multisource", "machine": machine(), **result})
        print(f"wrote {path} (smoke run; {RESULTS.relative_to(ROOT)} is for full runs)")
    else:
        write_result("multisource" if args.part == "all" else f"multisource_{args.part}", result)


if __name__ == "__main__":
    main()
