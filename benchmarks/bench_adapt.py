"""Language adaptation on the real multilingual-e5-small: KL overhead and init quality after training.

Target: Guarani (AmericasNLP 2021 `train.gn`), a new 8,000-piece vocabulary (the size the ALP search
chooses on this text, see `vocab_search.json`), so the MLM head is target-sized as in a real pack.

1. Throughput: tokens/s of a training step with MLM only vs MLM + KL (the KL's extra forward with
   adapters off, DESIGN.md point 3), same batches, same model; the two settings are interleaved and
   repeated so drifting machine load hits both alike. Goal: overhead < 35 %.
2. Quality: `crossling.adapt` end to end with init = unibridge (procrustes) vs random (the paper's
   "- init" ablation), same tokenizer, same fixed step budget, same seeded held-out lines; reported:
   held-out MLM perplexity before training (step 0) and after. The paper's ablation predicts a clear
   gap in favour of unibridge.
3. MLM head positions: a language-adapter step on e5-small's own 250k vocabulary (a MAD-X pack, as
   every source-language pack and the MAD-X rows of the recipes use), with the MLM head over every
   position (Hugging Face's `labels=` path) vs over the masked positions only (crossling's
   `masked_lm_outputs`); same batches, interleaved; the median per-batch ratio is the speed-up.

    python benchmarks/bench_adapt.py [--steps 200] [--lines 10000] [--lr 1e-3]
        [--skip-speed] [--skip-quality] [--skip-head]   # a part not rerun keeps its last figures
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch
from common import RESULTS, data_root, model_dir, peak_rss_mb, write_result

from crossling.config import LanguageAdapterConfig, TrainingConfig, VocabSearchConfig
from crossling.data import read_text

VOCAB_SIZE = 8000
GUARANI = Path("americasnlp2021_parallel") / "guarani-spanish" / "train.gn"  # under the data root


def guarani_lines(n: int) -> list[str]:
    """The first `n` lines of the Guarani side of AmericasNLP 2021 (the adaptation benchmarks' text)."""
    return [r["text"] for r in read_text(data_root() / GUARANI)][:n]


def mlm_batches(tokenizer, lines: list[str], args) -> list[dict]:
    """`args.speed_steps` masked batches of `args.batch_size` lines, seeded."""
    from transformers import DataCollatorForLanguageModeling

    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    torch.manual_seed(0)
    batches = []
    for i in range(args.speed_steps):
        chunk = lines[i * args.batch_size : (i + 1) * args.batch_size]
        enc = tokenizer(chunk, truncation=True, max_length=args.max_length)
        batches.append(collator([{"input_ids": ids} for ids in enc["input_ids"]]))
    return batches


def paired_times(
    batches: list[dict], args, step: Callable[[dict, bool], None]
) -> list[tuple[int, float, float]]:
    """(tokens, seconds with False, seconds with True) per batch after warm-up.

    Paired design: every batch is timed with both settings back to back (order alternating), so load
    from other work on the machine hits both alike; callers take the median of per-batch ratios.
    """
    pairs = []
    for i, batch in enumerate(batches * args.repeats):
        seconds = {}
        for setting in (False, True) if i % 2 == 0 else (True, False):
            start = time.perf_counter()
            step(batch, setting)
            seconds[setting] = time.perf_counter() - start
        if i >= args.warmup:
            pairs.append((int(batch["attention_mask"].sum()), seconds[False], seconds[True]))
    return pairs


def ratio_summary(ratios: list[float]) -> dict:
    """Min / median / max of sorted per-batch ratios (the median as the benchmarks have always taken it)."""
    return {
        "min": round(ratios[0], 3),
        "median": round(ratios[len(ratios) // 2], 3),
        "max": round(ratios[-1], 3),
    }


def throughput(base: Path, tokenizer, embeddings, lines: list[str], args) -> dict:
    from crossling.language import build_adaptable_model, freeze_for_language_training, mlm_kl_loss
    from crossling.training_utils import adamw

    batches = mlm_batches(tokenizer, lines, args)
    config = LanguageAdapterConfig()
    torch.manual_seed(0)
    adaptable = build_adaptable_model(base, "gn", config, tokenizer=tokenizer, embeddings=embeddings)
    freeze_for_language_training(adaptable, config)
    model = adaptable.model.train()
    optimiser = adamw([p for p in model.parameters() if p.requires_grad], lr=1e-4)  # as training does

    def step(batch: dict, with_kl: bool) -> None:
        loss, _out, _parts = mlm_kl_loss(model, batch, 1.0 if with_kl else 0.0, 1.0)
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)

    # the median of the per-batch ratios is the KL's overhead
    pairs = paired_times(batches, args, step)
    ratios = sorted(kl / mlm for _, mlm, kl in pairs)
    overhead = ratios[len(ratios) // 2] - 1.0
    tokens = sum(n for n, _, _ in pairs)
    best = {
        "mlm": round(tokens / sum(m for _, m, _ in pairs), 1),
        "mlm_kl": round(tokens / sum(k for _, _, k in pairs), 1),
    }
    print(
        f"MLM only {best['mlm']:.0f} tokens/s, MLM + KL {best['mlm_kl']:.0f} tokens/s, "
        f"median paired overhead {overhead:.1%}"
    )
    return {
        "design": "paired: each batch timed with and without KL back to back; median of per-batch ratios",
        "pairs": len(pairs),
        "per_batch_ratio": ratio_summary(ratios),
        "tokens_per_second": best,
        "kl_overhead": round(overhead, 4),
        "goal": "kl_overhead < 0.35",
        "passed": overhead < 0.35,
    }


def head_positions(base: Path, lines: list[str], args) -> dict:
    """Step time of a base-vocabulary language adapter: MLM head at every position vs masked ones."""
    from transformers import AutoTokenizer

    from crossling.language import build_adaptable_model, freeze_for_language_training, masked_lm_outputs
    from crossling.training_utils import adamw

    tokenizer = AutoTokenizer.from_pretrained(base)
    batches = mlm_batches(tokenizer, lines, args)
    config = LanguageAdapterConfig.load("madx")
    torch.manual_seed(0)
    adaptable = build_adaptable_model(base, "gn", config)
    freeze_for_language_training(adaptable, config)
    model = adaptable.model.train()
    optimiser = adamw([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step(batch: dict, masked_only: bool) -> None:
        loss = masked_lm_outputs(model, batch)[0] if masked_only else model(**batch).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)

    pairs = paired_times(batches, args, step)
    ratios = sorted(full / masked for _, full, masked in pairs)
    tokens = sum(n for n, _, _ in pairs)
    speedup = ratios[len(ratios) // 2]
    result = {
        "design": "paired: each batch timed with the head at every position and at the masked ones, "
        "back to back (order alternating); median of per-batch ratios",
        "vocabulary": len(tokenizer),
        "adapter": "madx (base vocabulary)",
        "pairs": len(pairs),
        "tokens_per_second": {
            "every_position": round(tokens / sum(f for _, f, _ in pairs), 1),
            "masked_positions": round(tokens / sum(m for _, _, m in pairs), 1),
        },
        "per_batch_ratio": ratio_summary(ratios),
        "speedup": round(speedup, 3),
    }
    print(f"MLM head at masked positions only: {speedup:.2f}x faster per step (median of {len(pairs)})")
    return result


def quality(base: Path, corpus: Path, tokenizer_dir: Path, work: Path, args) -> dict:
    from crossling.adapt import AdaptOptions, adapt

    results = {}
    for method in ("unibridge", "random"):
        training = TrainingConfig.load(
            "cpu",
            max_steps=args.steps,
            batch_size=args.batch_size,
            max_length=args.max_length,
            **({"learning_rate": args.lr} if args.lr is not None else {}),
            save_steps=args.steps,
            eval_steps=args.steps,
        )
        options = AdaptOptions(
            corpus=corpus,
            tokenizer=tokenizer_dir,
            init_method=method,
            training=training,
            eval_lines=args.eval_lines,
            fasttext_dim=args.ft_dim,
            work_dir=work / f"{method}.work",
            progress=False,
            vocab_search=VocabSearchConfig.load(None),
        )
        started = time.perf_counter()
        # one step: the initialised model before real training (same held-out lines, fastText cached)
        options_zero = AdaptOptions(
            **{
                **vars(options),
                "training": training.replace(max_steps=1),
                "work_dir": work / f"{method}-1.work",
            }
        )
        zero_pack = adapt("gn", base, work / f"{method}-step0", options_zero)
        evaluation = zero_pack.reports["corpus"]
        pack = adapt("gn", base, work / method, options)
        seconds = time.perf_counter() - started
        held = pack.reports["training"]["eval"]
        zero = zero_pack.reports["training"]["eval"]
        results[method] = {
            "init_rows": pack.reports["init"]["rows"],
            "perplexity_after_1_step": round(zero["perplexity"], 2),
            "perplexity": round(held["perplexity"], 2),
            "kl": round(held["kl"], 5),
            "train_loss": round(pack.reports["training"]["train_loss"], 4),
            "seconds": round(seconds, 1),
            "eval_lines": evaluation["eval_lines"],
        }
        print(
            f"{method:>10}: held-out perplexity {zero['perplexity']:.1f} (1 step) -> {held['perplexity']:.1f}"
        )
    ratio = results["random"]["perplexity"] / results["unibridge"]["perplexity"]
    return {
        "steps": args.steps,
        "learning_rate": training.learning_rate,
        "results": results,
        "perplexity_ratio_random_over_unibridge": round(ratio, 3),
        "expected": "unibridge perplexity clearly below random (UniBridge ablation: init matters most)",
        "holds": ratio > 1.1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=10000, help="Guarani lines used")
    parser.add_argument("--steps", type=int, default=200, help="training steps per init method")
    parser.add_argument("--speed-steps", type=int, default=10, help="steps per throughput run")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--eval-lines", type=int, default=300)
    parser.add_argument("--ft-dim", type=int, default=300)
    parser.add_argument("--vocab-size", type=int, default=VOCAB_SIZE)
    parser.add_argument(
        "--lr", type=float, help="learning rate of the quality runs (default: the cpu preset's)"
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-head", action="store_true", help="skip the MLM-head-positions timing")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from crossling.embeddings import FastTextConfig, initialize
    from crossling.vocab import train_tokenizer

    base = model_dir("multilingual-e5-small")
    lines = guarani_lines(args.lines)
    result: dict = {
        "base": "multilingual-e5-small (no MLM head: a fresh one, decoder tied to the new embeddings)",
        "data": f"{GUARANI}, first {len(lines)} lines",
        "vocabulary": f"SentencePiece unigram, {args.vocab_size} pieces",
    }
    # each part records its own settings and date: a rerun of one part keeps the other's figures
    options = vars(args)
    common = ("lines", "batch_size", "max_length", "ft_dim", "vocab_size", "threads")
    part_settings = {
        "throughput": {k: options[k] for k in (*common, "speed_steps", "warmup", "repeats")},
        "quality": {k: options[k] for k in (*common, "steps", "lr", "eval_lines")},
        "head_positions": {
            k: options[k]
            for k in ("lines", "batch_size", "max_length", "threads", "speed_steps", "warmup", "repeats")
        },
    }

    def finish(part: str, figures: dict) -> None:
        # ru_maxrss only grows: this is the process's peak up to the end of this part
        result[part] = {
            **figures,
            "settings": part_settings[part],
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "process_peak_rss_mb": round(peak_rss_mb(), 1),
        }

    with tempfile.TemporaryDirectory(prefix="crossling-bench-adapt-") as tmp:
        work = Path(tmp)
        corpus = work / "gn.txt"
        corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
        if not (args.skip_speed and args.skip_quality):  # the head part uses e5's own tokenizer
            tokenizer_dir = train_tokenizer(corpus, args.vocab_size, work / "tokenizer")
        if not args.skip_speed:
            from crossling.embeddings import load_tokenizer

            tokenizer = load_tokenizer(tokenizer_dir)
            embeddings, _ = initialize(
                base, tokenizer, lines, fasttext=FastTextConfig.load(None, dim=args.ft_dim)
            )
            finish("throughput", throughput(base, tokenizer, embeddings, lines, args))
        if not args.skip_quality:
            finish("quality", quality(base, corpus, tokenizer_dir, work, args))
        if not args.skip_head:
            finish("head_positions", head_positions(base, lines, args))
    previous = RESULTS / "adapt.json"
    if previous.is_file():
        # parts not rerun keep their figures (each carries its own settings, date and peak RSS)
        kept = json.loads(previous.read_text(encoding="utf-8"))
        result = {
            **{k: kept[k] for k in (*part_settings, "settings_note") if k in kept and k not in result},
            **result,
        }
    peaks = [
        result[p]["process_peak_rss_mb"] for p in part_settings if "process_peak_rss_mb" in result.get(p, {})
    ]
    result["peak_rss_mb"] = max(peaks, default=None)
    write_result("adapt", result)


if __name__ == "__main__":
    main()
