"""bf16 vs fp32 training on the real multilingual-e5-small: step time of crossling's training steps, and
the held-out perplexity of a language adapter trained both ways.

`TrainingConfig.precision = "bf16"` runs the matrix products under `torch.autocast(bfloat16)`; weights,
optimiser state and losses stay fp32. On a CPU with AMX / AVX-512 BF16 that should make the recipes'
`cpu` budget cheaper; this measures by how much, and whether the result changes.

1. Speed, paired: every batch is timed with fp32 and bf16 back to back (order alternating), median of
   the per-batch ratios fp32 / bf16, for
   - `language_new_vocab`: a UniBridge language-adapter step (MLM + KL) on a new 8,000-piece Guarani
     vocabulary (target packs);
   - `language_base_vocab`: a MAD-X language-adapter step on e5's own 250k vocabulary (source packs);
   - `task_adapter_nli`: an NLI task-adapter step stacked on a language adapter (XNLI English pairs);
   - `finetune_ner`: a full fine-tuning step (PAN-X English), fused AdamW over all 118M parameters.
2. Quality: `crossling.adapt` end to end (same tokenizer, UniBridge init, same seeded held-out lines and
   steps) at fp32 and at bf16: held-out MLM perplexity and training seconds.

    python benchmarks/bench_precision.py [--steps 150] [--threads 1] [--skip-quality | --skip-speed]
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
from bench_adapt import guarani_lines, mlm_batches, paired_times, ratio_summary
from common import RESULTS, data_root, model_dir, peak_rss_mb, write_result

from crossling.config import LanguageAdapterConfig, TrainingConfig, VocabSearchConfig


def paired(batches: list[dict], step: Callable[[dict], None], args) -> dict:
    """Median fp32 / bf16 step-time ratio over `batches` x repeats (bench_adapt's paired design)."""

    from crossling.training_utils import autocast

    def timed(batch: dict, bf16: bool) -> None:
        with autocast("bf16" if bf16 else "fp32"):  # forward, backward and update, as timed before
            step(batch)

    pairs = [(fp32, bf16) for _, fp32, bf16 in paired_times(batches, args, timed)]
    ratios = sorted(fp32 / bf16 for fp32, bf16 in pairs)
    return {
        "pairs": len(pairs),
        "seconds_per_step": {
            "fp32": round(sorted(p[0] for p in pairs)[len(pairs) // 2], 3),
            "bf16": round(sorted(p[1] for p in pairs)[len(pairs) // 2], 3),
        },
        "per_batch_ratio": ratio_summary(ratios),
        "speedup": ratios[len(ratios) // 2],
    }


def train_step(model: torch.nn.Module, loss_fn: Callable[[dict], torch.Tensor]) -> Callable[[dict], None]:
    from crossling.training_utils import adamw

    optimiser = adamw([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step(batch: dict) -> None:
        loss = loss_fn(batch)
        loss.float().backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)

    return step


def language_steps(base: Path, tokenizer, embeddings, lines: list[str], args) -> dict:
    from crossling.language import build_adaptable_model, freeze_for_language_training, mlm_kl_loss

    config = LanguageAdapterConfig()
    torch.manual_seed(0)
    adaptable = build_adaptable_model(base, "gn", config, tokenizer=tokenizer, embeddings=embeddings)
    freeze_for_language_training(adaptable, config)
    model = adaptable.model.train()
    step = train_step(model, lambda b: mlm_kl_loss(model, b, 1.0, 1.0)[0])
    return paired(mlm_batches(tokenizer, lines, args), step, args)


def base_vocab_steps(base: Path, lines: list[str], args) -> dict:
    from transformers import AutoTokenizer

    from crossling.language import build_adaptable_model, freeze_for_language_training, masked_lm_outputs

    tokenizer = AutoTokenizer.from_pretrained(base)
    config = LanguageAdapterConfig.load("madx")
    torch.manual_seed(0)
    adaptable = build_adaptable_model(base, "gn", config)
    freeze_for_language_training(adaptable, config)
    model = adaptable.model.train()
    step = train_step(model, lambda b: masked_lm_outputs(model, b)[0])
    return paired(mlm_batches(tokenizer, lines, args), step, args)


def task_steps(base: Path, work: Path, args, task: str, mode: str) -> dict:
    """Steps of the model `train_task` builds (one real training step first), on its own batches."""
    from crossling.adapt import AdaptOptions, adapt
    from crossling.tasks import train_task
    from crossling.tasks.data import collate, encode_records, read_task_data

    path = {"nli": "xnli_xtreme/dev-en.tsv", "ner": "panx_xtreme/train-en.tsv"}[task]
    records = read_task_data(task, data_root() / path)[: args.batch_size * args.speed_steps]
    one_step = TrainingConfig.load(
        "smoke", max_steps=1, batch_size=args.batch_size, max_length=args.max_length
    )
    pack = None
    if mode != "finetune":  # a base-vocabulary language pack under the task adapter, as in the recipes
        work.mkdir(parents=True, exist_ok=True)
        text = [" ".join(r["tokens"]) if "tokens" in r else r["text_a"] for r in records]
        (work / "en.txt").write_text("\n".join(text) + "\n", encoding="utf-8")
        options = AdaptOptions(
            corpus=work / "en.txt",
            vocab="base",
            adapter=LanguageAdapterConfig.load("madx"),
            training=one_step,
            eval_lines=8,
            work_dir=work / "pack.work",
            progress=False,
        )
        pack = adapt("en", base, work / "pack", options)
    _, model = train_task(
        task,
        records,
        work / "task",
        pack=pack,
        base=None if pack is not None else base,
        language="en",
        config={"mode": mode},
        training=one_step,
        progress=False,
        return_model=True,
    )
    model.activate()
    module = model.model.train()
    label2id = {label: i for i, label in enumerate(model.labels)}
    encoded = encode_records(task, model.tokenizer, records, label2id, args.max_length).features
    batches = [
        collate(encoded[i * args.batch_size : (i + 1) * args.batch_size], model.tokenizer.pad_token_id)
        for i in range(args.speed_steps)
    ]
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    step = train_step(module, lambda b: module(**b).loss)
    return {**paired(batches, step, args), "trainable_parameters": trainable}


def quality(base: Path, corpus: Path, tokenizer_dir: Path, embeddings_file: Path, work: Path, args) -> dict:
    from crossling.adapt import AdaptOptions, adapt

    results = {}
    for precision in ("fp32", "bf16"):
        training = TrainingConfig.load(
            "cpu",
            max_steps=args.steps,
            batch_size=args.batch_size,
            max_length=args.max_length,
            learning_rate=args.lr,
            save_steps=args.steps,
            eval_steps=args.steps,
            precision=precision,
        )
        options = AdaptOptions(
            corpus=corpus,
            tokenizer=tokenizer_dir,
            embeddings=embeddings_file,
            training=training,
            eval_lines=args.eval_lines,
            work_dir=work / f"{precision}.work",
            progress=False,
            vocab_search=VocabSearchConfig.load(None),
        )
        started = time.perf_counter()
        pack = adapt("gn", base, work / precision, options)
        held = pack.reports["training"]["eval"]
        results[precision] = {
            "perplexity": round(held["perplexity"], 2),
            "kl": round(held["kl"], 5),
            "train_loss": round(pack.reports["training"]["train_loss"], 4),
            "training_seconds": round(pack.reports["seconds"]["training"], 1),
            "seconds": round(time.perf_counter() - started, 1),
        }
        print(f"{precision}: held-out perplexity {held['perplexity']:.1f}, {results[precision]['seconds']} s")
    fp32, bf16 = results["fp32"], results["bf16"]
    return {
        "steps": args.steps,
        "learning_rate": args.lr,
        "results": results,
        "perplexity_ratio_bf16_over_fp32": round(bf16["perplexity"] / fp32["perplexity"], 4),
        "training_speedup": round(fp32["training_seconds"] / bf16["training_seconds"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=6000, help="Guarani lines used")
    parser.add_argument("--steps", type=int, default=150, help="training steps of each quality run")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--speed-steps", type=int, default=6, help="batches per speed part")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=96)
    parser.add_argument("--eval-lines", type=int, default=300)
    parser.add_argument("--ft-dim", type=int, default=100)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-speed", action="store_true", help="keep the speed figures of the last run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from crossling.embeddings import FastTextConfig, initialize, load_tokenizer, save_initialization
    from crossling.vocab import train_tokenizer

    base = model_dir("multilingual-e5-small")
    lines = guarani_lines(args.lines)
    result: dict = {
        "base": "multilingual-e5-small",
        "design": "paired: each batch timed at fp32 and bf16 back to back (order alternating); "
        "speedup = median of per-batch fp32/bf16 ratios",
        "settings": {k: v for k, v in vars(args).items()},
    }
    speed: dict = {}
    with tempfile.TemporaryDirectory(prefix="crossling-bench-precision-") as tmp:
        work = Path(tmp)
        corpus = work / "gn.txt"
        corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
        tokenizer_dir = train_tokenizer(corpus, args.vocab_size, work / "tokenizer")
        tokenizer = load_tokenizer(tokenizer_dir)
        embeddings, report = initialize(
            base, tokenizer, lines, fasttext=FastTextConfig.load(None, dim=args.ft_dim)
        )
        embeddings_file = work / "init"  # what `crossling init` writes; both quality runs start from it
        save_initialization(embeddings_file, embeddings, report)
        parts = {
            "language_new_vocab": lambda: language_steps(base, tokenizer, embeddings, lines, args),
            "language_base_vocab": lambda: base_vocab_steps(base, lines, args),
            "task_adapter_nli": lambda: task_steps(base, work / "nli", args, "nli", "adapter"),
            "finetune_ner": lambda: task_steps(base, work / "ner", args, "ner", "finetune"),
        }
        for name, part in parts.items() if not args.skip_speed else ():
            speed[name] = part()
            times = speed[name]["seconds_per_step"]
            print(f"{name}: bf16 {speed[name]['speedup']:.2f}x faster per step ({times})")
            speed[name]["speedup"] = round(speed[name]["speedup"], 3)
        result["speed"] = speed
        result["speed_date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        if args.skip_speed:  # the last run's figures, with their date and conditions
            kept = json.loads((RESULTS / "precision.json").read_text(encoding="utf-8"))
            result["speed"] = kept["speed"]
            result["speed_date"] = kept.get("speed_date") or kept["machine"]["date"]
            # the machine the kept figures were measured on, not this one
            result["speed_machine"] = kept.get("speed_machine") or kept["machine"]
            if "conditions" in kept:
                result["conditions"] = kept["conditions"]
        if not args.skip_quality:
            result["quality"] = quality(base, corpus, tokenizer_dir, embeddings_file, work, args)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    write_result("precision", result)


if __name__ == "__main__":
    main()
