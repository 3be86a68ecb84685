"""UniBERT-style students distilled from multilingual-e5-small on real multilingual text, vs the teacher.

Each configuration is one short distillation under a stated CPU budget (default: 300 optimiser steps
of 16 sentences, one torch thread, about 10-14 minutes on a shared 2-core machine), then the same
evaluation for every model:

* parameters (total / embeddings / transformer layers) and size on disk;
* encode throughput, sentences per second, teacher and student measured back to back in the same
  process on the same 512 sentences (batch 32, mean pooling);
* Tatoeba retrieval (x -> en and en -> x accuracy@1, cosine of mean-pooled states) on 300 pairs of
  ara, cmn, rus, spa (languages in the training corpus) and jpn, tgl (not in it);
* XNLI held-out rows (2000-2489 of each dev file, never used for training): en <-> x retrieval of
  parallel hypotheses (how language-universal the sentence states are), a language-ID linear probe
  (lower = less language-specific), and zero-shot cross-lingual NLI with a frozen-feature logistic
  probe ([u, v, |u-v|, u*v]) trained on English rows 0-1999 and tested on the held-out rows;
* for students, the held-out discriminator accuracy and loss terms from `crossling.json`.

Training text: XNLI dev rows 0-1999 (premises and hypotheses) of ar de en es fr hi ru sw tr zh, plus the
Guarani and Nahuatl sides of AmericasNLP 2021 train, so that the sampling exponent matters (12 languages,
2.6k-26k lines each). Configurations (run each with --configs; results are merged by name):

    teacher          the teacher itself
    init-xxsmall     the xxsmall student before training (SVD-projected embeddings, random layers)
    xxsmall-adv      xxsmall, the paper's objective 0.5 MLM - 0.1 L_adv + 0.4 KD
    xxsmall-noadv    xxsmall, the adversarial term removed (same seed, data and steps)
    xxsmall-adv-dlr10  xxsmall, the paper's objective, discriminator learning rate x10 (our variant)
    xxsmall-adv-untied / xxsmall-noadv-untied   the same two with an untied MLM decoder (our variant)
    xxsmall-kd-only  xxsmall, distillation alone (MLM and adversarial terms removed; a diagnostic)
    xsmall-adv       xsmall, the paper's objective
    small-adv        small, the paper's objective

    python benchmarks/bench_distill.py --configs teacher init-xxsmall xxsmall-adv xxsmall-noadv

`--smoke` checks the whole path in a few minutes (2 steps, 100 training rows, 40 held-out rows, 20
Tatoeba pairs) and writes to /tmp unless --results is given; its numbers mean nothing. An interrupted
student continues with --resume; otherwise each configuration starts afresh in --work.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CROSSLING_DATA", ROOT.parent / "shared" / "data"))
TEACHER = Path(
    os.environ.get(
        "CROSSLING_E5",
        Path(os.environ.get("CROSSLING_MODELS", ROOT.parent / "models")) / "multilingual-e5-small",
    )
)
RESULTS = ROOT / "benchmarks" / "results" / "distill.json"

XNLI_LANGUAGES = ["ar", "de", "en", "es", "fr", "hi", "ru", "sw", "tr", "zh"]
AMERICASNLP = {"gn": "guarani-spanish/train.gn", "nah": "nahuatl-spanish/train.nah"}
TATOEBA = {"ara": True, "cmn": True, "rus": True, "spa": True, "jpn": False, "tgl": False}  # in training?


@dataclass(frozen=True)
class Scale:
    """How much data the benchmark trains and evaluates on."""

    train_rows: range = range(0, 2000)  # XNLI dev rows used as training text and for the NLI probe
    held_out_rows: range = range(2000, 2490)  # XNLI dev rows never trained on
    tatoeba_pairs: int = 300
    speed_sentences_per_language: int = 128
    max_lines_per_language: int = 0  # 0: all (caps the AmericasNLP files in smoke runs)


FULL = Scale()
SMOKE = Scale(range(0, 100), range(2000, 2040), 20, 16, 100)
CONFIGS = {
    "xxsmall-adv": {"size": "xxsmall"},
    "xxsmall-noadv": {"size": "xxsmall", "adversarial_weight": 0.0},
    "xxsmall-adv-dlr10": {"size": "xxsmall", "discriminator_lr_multiplier": 10.0},
    "xxsmall-adv-untied": {"size": "xxsmall", "tie_decoder": False},
    "xxsmall-noadv-untied": {"size": "xxsmall", "adversarial_weight": 0.0, "tie_decoder": False},
    "xxsmall-kd-only": {"size": "xxsmall", "adversarial_weight": 0.0, "mlm_weight": 0.0},
    "xsmall-adv": {"size": "xsmall"},
    "small-adv": {"size": "small"},
}


# ---------------------------------------------------------------------- data
def xnli_rows(lang: str) -> list[tuple[str, str, str]]:
    path = DATA / "xnli_xtreme" / f"dev-{lang}.tsv"
    return [tuple(line.split("\t")[:3]) for line in path.read_text(encoding="utf-8").splitlines()]


def write_training_corpus(work: Path, scale: Scale) -> dict[str, Path]:
    """XNLI training rows of each language (both sentences) and two AmericasNLP languages, as text files."""
    corpus_dir = work / "corpus-files"
    corpus_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for lang in XNLI_LANGUAGES:
        rows = xnli_rows(lang)
        lines = [s for i in scale.train_rows for s in rows[i][:2]]
        files[lang] = corpus_dir / f"{lang}.txt"
        files[lang].write_text("\n".join(lines) + "\n", encoding="utf-8")
    for lang, rel in AMERICASNLP.items():
        files[lang] = DATA / "americasnlp2021_parallel" / rel
    return files


def evaluation_data(scale: Scale) -> dict[str, Any]:
    rows = {lang: xnli_rows(lang) for lang in XNLI_LANGUAGES}
    tatoeba = {}
    for code in TATOEBA:
        src = DATA / "tatoeba_laser" / f"tatoeba.{code}-eng.{code}"
        eng = DATA / "tatoeba_laser" / f"tatoeba.{code}-eng.eng"
        xs = src.read_text(encoding="utf-8").splitlines()[: scale.tatoeba_pairs]
        es = eng.read_text(encoding="utf-8").splitlines()[: scale.tatoeba_pairs]
        tatoeba[code] = (xs, es)
    return {"xnli": rows, "tatoeba": tatoeba, "scale": scale}


# ---------------------------------------------------------------------- encoding and probes
def encode(model: Any, tokenizer: Any, sentences: list[str], batch_size: int = 64) -> torch.Tensor:
    """Mean-pooled final states, batches sorted by length (less padding), returned in input order."""
    from crossling.language import mean_pool

    model.eval()
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    out = torch.empty(len(sentences), model.config.hidden_size)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        enc = tokenizer(
            [sentences[i] for i in idx], truncation=True, max_length=128, padding=True, return_tensors="pt"
        )
        with torch.no_grad():
            hidden = model.base_model(
                input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
            ).last_hidden_state
        out[idx] = mean_pool(hidden, enc["attention_mask"])
    return out


class Encoder:
    """Encodes each distinct sentence once."""

    def __init__(self, model: Any, tokenizer: Any):
        self.model, self.tokenizer, self.cache = model, tokenizer, {}

    def __call__(self, sentences: list[str]) -> torch.Tensor:
        todo = sorted({s for s in sentences if s not in self.cache})
        if todo:
            for s, v in zip(todo, encode(self.model, self.tokenizer, todo), strict=True):
                self.cache[s] = v
        return torch.stack([self.cache[s] for s in sentences])


def retrieval_accuracy(queries: torch.Tensor, keys: torch.Tensor) -> float:
    sims = F.normalize(queries, dim=-1) @ F.normalize(keys, dim=-1).T
    return float((sims.argmax(1) == torch.arange(len(queries))).float().mean())


def logistic_probe(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, n_classes: int
) -> torch.Tensor:
    """Predictions of an L2-regularised multinomial logistic regression (LBFGS) on standardised features."""
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    x, xt = (train_x - mean) / std, (test_x - mean) / std
    torch.manual_seed(0)
    layer = torch.nn.Linear(x.shape[1], n_classes)
    opt = torch.optim.LBFGS(layer.parameters(), max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(layer(x), train_y) + 1e-3 * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return layer(xt).argmax(1)


def pair_features(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.cat([u, v, (u - v).abs(), u * v], dim=1)


def evaluate_encoder(model: Any, tokenizer: Any, data: dict[str, Any]) -> dict[str, Any]:
    enc = Encoder(model, tokenizer)
    started = time.perf_counter()
    results: dict[str, Any] = {}

    tatoeba = {}
    for code, (xs, es) in data["tatoeba"].items():
        x, e = enc(xs), enc(es)
        tatoeba[code] = round((retrieval_accuracy(x, e) + retrieval_accuracy(e, x)) / 2, 4)
    seen = [tatoeba[c] for c, trained in TATOEBA.items() if trained]
    unseen = [tatoeba[c] for c, trained in TATOEBA.items() if not trained]
    results["tatoeba_acc"] = {
        "per_language": tatoeba,
        "mean_trained_languages": round(sum(seen) / len(seen), 4),
        "mean_other_languages": round(sum(unseen) / len(unseen), 4),
    }

    rows, scale = data["xnli"], data["scale"]
    hyps = {lang: [rows[lang][i][1] for i in scale.held_out_rows] for lang in XNLI_LANGUAGES}
    hyp_vecs = {lang: enc(hyps[lang]) for lang in XNLI_LANGUAGES}
    xret = {}
    for lang in XNLI_LANGUAGES:
        if lang != "en":
            a, b = hyp_vecs[lang], hyp_vecs["en"]
            xret[lang] = round((retrieval_accuracy(a, b) + retrieval_accuracy(b, a)) / 2, 4)
    results["xnli_parallel_retrieval_acc"] = {
        "per_language": xret,
        "mean": round(sum(xret.values()) / len(xret), 4),
    }

    # language ID on held-out hypotheses: train on even rows, test on odd rows
    xs, ys = [], []
    for k, lang in enumerate(XNLI_LANGUAGES):
        xs.append(hyp_vecs[lang])
        ys.append(torch.full((len(hyps[lang]),), k))
    x, y = torch.cat(xs), torch.cat(ys)
    even = torch.arange(len(x)) % 2 == 0
    pred = logistic_probe(x[even], y[even], x[~even], len(XNLI_LANGUAGES))
    results["language_id_probe_acc"] = round(float((pred == y[~even]).float().mean()), 4)

    # zero-shot cross-lingual NLI: probe trained on the English training rows, tested on held-out rows
    labels = {"entailment": 0, "neutral": 1, "contradiction": 2}
    en, train_rows = rows["en"], scale.train_rows
    train_x = pair_features(enc([en[i][0] for i in train_rows]), enc([en[i][1] for i in train_rows]))
    train_y = torch.tensor([labels[en[i][2]] for i in train_rows])
    nli = {}
    for lang in XNLI_LANGUAGES:
        test = rows[lang]
        test_x = pair_features(enc([test[i][0] for i in scale.held_out_rows]), hyp_vecs[lang])
        test_y = torch.tensor([labels[test[i][2]] for i in scale.held_out_rows])
        nli[lang] = round(float((logistic_probe(train_x, train_y, test_x, 3) == test_y).float().mean()), 4)
    results["xnli_zero_shot_probe_acc"] = {
        "per_language": nli,
        "mean_non_english": round(sum(v for k, v in nli.items() if k != "en") / (len(nli) - 1), 4),
    }
    results["eval_seconds"] = round(time.perf_counter() - started, 1)
    results["sentences_encoded"] = len(enc.cache)
    return results


def throughput(model: Any, tokenizer: Any, sentences: list[str], batch_size: int = 32) -> float:
    """Sentences per second of padded, unsorted batches (what a user's plain loop gets)."""
    from crossling.language import encode as plain_encode

    plain_encode(model, tokenizer, sentences[:batch_size], batch_size=batch_size)  # warm-up
    started = time.perf_counter()
    plain_encode(model, tokenizer, sentences, batch_size=batch_size)
    return round(len(sentences) / (time.perf_counter() - started), 1)


def disk_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p.name != "crossling.json")


# ---------------------------------------------------------------------- configurations
def run_config(name: str, args: argparse.Namespace, data: dict[str, Any]) -> dict[str, Any]:
    from transformers import AutoModel, AutoTokenizer

    from crossling.distill import DistillConfig, distill, distill_training_config
    from crossling.distill.student import build_student, count_parameters, load_teacher

    teacher_tok = AutoTokenizer.from_pretrained(TEACHER)
    teacher = AutoModel.from_pretrained(TEACHER).eval()
    scale = data["scale"]
    first = scale.held_out_rows.start
    speed_sentences = [
        r[1]
        for lang in ("en", "es", "ar", "zh")
        for r in data["xnli"][lang][first : first + scale.speed_sentences_per_language]
    ]
    result: dict[str, Any] = {"load_average_start": os.getloadavg()[0]}
    started = time.perf_counter()
    if name == "teacher":
        result["parameters"] = {"total": sum(p.numel() for p in teacher.parameters())}
        result["size_on_disk_bytes"] = disk_size(TEACHER)
        result["throughput_sentences_per_s"] = throughput(teacher, teacher_tok, speed_sentences)
        result["scores"] = evaluate_encoder(teacher, teacher_tok, data)
    elif name.startswith("init-"):
        size = name.removeprefix("init-")
        loaded = load_teacher(TEACHER)
        student, _, report = build_student(
            loaded, DistillConfig.load(None, size=size).student, seed=args.seed
        )
        result["parameters"] = count_parameters(student)
        result["embedding_init"] = report["projection"]
        result["teacher_throughput_sentences_per_s"] = throughput(teacher, teacher_tok, speed_sentences)
        result["throughput_sentences_per_s"] = throughput(student, teacher_tok, speed_sentences)
        result["scores"] = evaluate_encoder(student, teacher_tok, data)
    else:
        overrides = CONFIGS[name]
        config = DistillConfig.load(
            "unibert", **overrides, max_lines_per_language=scale.max_lines_per_language
        )
        training = distill_training_config(
            "cpu",
            max_steps=args.steps,
            batch_size=args.batch_size,
            save_steps=max(args.steps // 2, 1),
            seed=args.seed,
        )
        out = args.work / "students" / name
        work = args.work / "students" / f"{name}.work"
        if not args.resume:  # a fresh run of this configuration: drop what an earlier one left
            shutil.rmtree(work, ignore_errors=True)
        student_info = distill(
            TEACHER,
            write_training_corpus(args.work, scale),
            out,
            config=config,
            training=training,
            work_dir=work,
            resume=args.resume,
            progress=args.progress,
        )
        meta = student_info.metadata
        student = AutoModel.from_pretrained(out).eval()
        tokenizer = AutoTokenizer.from_pretrained(out)
        result["parameters"] = meta["student"]["parameters"]
        result["size_on_disk_bytes"] = disk_size(out)
        result["distill_config"] = config.to_dict()
        result["training"] = {
            k: meta["training"][k]
            for k in (
                "steps",
                "batch_size",
                "learning_rate",
                "warmup_ratio",
                "train_loss",
                "seconds",
                "tokens_per_second",
            )
        }
        result["training"]["history"] = meta["training"]["history"]
        result["held_out_distillation_eval"] = (
            meta["eval"]["mean_over_languages"] if meta.get("eval") else None
        )
        result["teacher_calibration"] = meta["student"].get("teacher_calibration")
        result["corpus"] = {
            lang: {k: c[k] for k in ("train_lines", "sampling_probability", "examples_drawn")}
            for lang, c in meta["corpus"].items()
        }
        result["teacher_throughput_sentences_per_s"] = throughput(teacher, teacher_tok, speed_sentences)
        result["throughput_sentences_per_s"] = throughput(student, tokenizer, speed_sentences)
        result["scores"] = evaluate_encoder(student, tokenizer, data)
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    result["load_average_end"] = os.getloadavg()[0]
    return result


def _rows(rows: range) -> str:
    return f"{rows.start}-{rows.stop - 1}"


def machine() -> dict[str, Any]:
    from crossling.artifacts import library_versions

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "note": "CPU shared with other jobs; load averages are recorded per configuration",
        "versions": library_versions(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--configs", nargs="+", default=["teacher", "init-xxsmall", "xxsmall-adv", "xxsmall-noadv"]
    )
    parser.add_argument("--steps", type=int, help="optimiser steps per student (default 300; smoke 2)")
    parser.add_argument("--batch-size", type=int, help="sentences per step (default 16; smoke 4)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("/tmp/crossling-bench-distill"))
    parser.add_argument("--results", type=Path, help=f"results file (default {RESULTS.relative_to(ROOT)})")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--resume", action="store_true", help="continue interrupted students")
    parser.add_argument(
        "--smoke", action="store_true", help="a few minutes on tiny data, to check the benchmark runs"
    )
    args = parser.parse_args(argv)
    scale = SMOKE if args.smoke else FULL
    args.steps = args.steps or (2 if args.smoke else 300)
    args.batch_size = args.batch_size or (4 if args.smoke else 16)
    if args.results is None:
        args.results = Path("/tmp/crossling-bench-distill-smoke.json") if args.smoke else RESULTS
    known = {"teacher", "init-xxsmall", "init-xsmall", "init-small", *CONFIGS}
    unknown = set(args.configs) - known
    if unknown:
        parser.error(f"unknown configuration(s) {sorted(unknown)}; known: {sorted(known)}")
    if not DATA.is_dir() or not TEACHER.is_dir():
        parser.error(
            f"needs the shared data ({DATA}) and the teacher ({TEACHER}); see CROSSLING_DATA, CROSSLING_E5"
        )
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    data = evaluation_data(scale)

    results = json.loads(args.results.read_text()) if args.results.is_file() else {"configs": {}}
    for name in args.configs:
        print(f"[bench_distill] {name} ...", file=sys.stderr, flush=True)
        results["configs"][name] = run_config(name, args, data)
        results["configs"][name]["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        results.update(
            {
                "benchmark": "crossling distill: UniBERT-style students from multilingual-e5-small",
                "teacher": str(TEACHER),
                "machine": machine(),
                "settings": {
                    "steps": args.steps,
                    "batch_size": args.batch_size,
                    "seed": args.seed,
                    "torch_threads": args.threads,
                    "smoke": args.smoke,
                    "budget": "cpu preset with the paper's optimiser (AdamW wd 0.01, clip 5, linear warm-up "
                    "6%, lr 5e-4), --steps steps of --batch-size sentences; <= 15 min per configuration",
                    "training_corpus": f"XNLI dev rows {_rows(scale.train_rows)} (premise + hypothesis) of "
                    + " ".join(XNLI_LANGUAGES)
                    + "; AmericasNLP 2021 train gn, nah"
                    + (
                        f" (first {scale.max_lines_per_language} lines)"
                        if scale.max_lines_per_language
                        else ""
                    ),
                    "evaluation": f"Tatoeba first {scale.tatoeba_pairs} pairs; XNLI dev rows "
                    f"{_rows(scale.held_out_rows)} held out; NLI probe trained on English rows "
                    f"{_rows(scale.train_rows)}",
                },
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
        )
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        summary = {
            k: v for k, v in results["configs"][name].items() if k in ("scores", "throughput_sentences_per_s")
        }
        print(json.dumps(summary, indent=1), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
