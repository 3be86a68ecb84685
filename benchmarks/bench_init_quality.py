"""Benchmark: how good is each embedding initialisation before any training? (Tatoeba retrieval)

For each language, a new SentencePiece unigram tokenizer is trained on target-language text, its
embedding matrix is initialised against multilingual-e5-small with every method, and the unchanged
e5-small encoder embeds (mean pooling) the Tatoeba target sentences through the new tokenizer + new
embeddings, and their English translations through the original tokenizer + embeddings. Reported:

* ``acc_t2e`` / ``acc_e2t``: retrieval accuracy (is the nearest English sentence the translation, and
  vice versa), ``mean_cos``: mean cosine of translation pairs, ``mean_cos_other``: mean cosine of
  non-pairs (e5's space is anisotropic, so the gap between the two matters, not ``mean_cos`` alone);
* where the Tatoeba target tokens' rows came from (special, lexical, semantic, sparsemax, random);
* ``base``: the original tokenizer and embeddings, the ceiling a new vocabulary starts below.

Corpora: Amharic uses the Amharic New Testament (``bible_corpus``), which does not contain the
Tatoeba sentences. The other languages have no comparable monolingual text in the shared data, so their
corpus is the UDHR text plus the Tatoeba target side itself (transductive: the tokenizer and the fastText
spaces see the unlabelled test sentences, never their English side) and is flagged so in the results.

Run from the repository root::

    python benchmarks/bench_init_quality.py                       # amh khm tam tat tgl, fastText dim 300
    python benchmarks/bench_init_quality.py --langs amh --ft-dim 100

Results go to ``benchmarks/results/init_quality.json``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METHODS = ("random", "overlap", "focus", "unibridge/none", "unibridge/procrustes")


def _default_data() -> Path:
    return Path(os.environ.get("CROSSLING_DATA", REPO.parent / "shared" / "data"))


def _default_models() -> Path:
    return Path(os.environ.get("CROSSLING_MODELS", Path(__file__).resolve().parents[2] / "models"))


def _read_lines(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]


def _corpus(data: Path, lang: str, tatoeba_src: list[str]) -> tuple[list[str], dict]:
    if lang == "amh":
        tsv = data / "bible_corpus" / "Amharic-NT.verses.tsv"
        lines = [
            ln.split("\t", 1)[1].strip() for ln in tsv.read_text(encoding="utf-8").splitlines() if "\t" in ln
        ]
        return [ln for ln in lines if ln], {"source": str(tsv.relative_to(data)), "transductive": False}
    udhr = data / "udhr" / "udhr2_subset" / f"{lang}.txt"
    lines = [ln for ln in _read_lines(udhr) if ln] if udhr.is_file() else []
    lines += [ln for ln in tatoeba_src if ln]
    return lines, {
        "source": f"{udhr.relative_to(data) if udhr.is_file() else '(no UDHR)'} + Tatoeba {lang} side",
        "transductive": True,
    }


def _train_tokenizer(lines: list[str], size: int, out: Path) -> int:
    from crossling.vocab import CorpusTooSmallError, train_tokenizer

    try:
        train_tokenizer(lines, size, out)
        return size
    except CorpusTooSmallError as err:  # small corpora: the largest size SentencePiece can build
        fitted = max(100, int(err.max_size * 0.95))
        train_tokenizer(lines, fitted, out)
        return fitted


class _Encoder:
    """e5-small with swappable input embeddings; mean-pooled, L2-normalised sentence vectors."""

    def __init__(self, base: Path):
        import torch
        from transformers import AutoModel
        from transformers import logging as hf_logging

        hf_logging.set_verbosity_error()  # the unused pooler's "newly initialized" warning
        self.torch = torch
        self.model = AutoModel.from_pretrained(base).eval()
        self.original = self.model.get_input_embeddings().weight.detach().clone()

    def embed(self, tokenizer, sentences: list[str], embeddings) -> object:
        torch = self.torch
        self.model.get_input_embeddings().weight = torch.nn.Parameter(embeddings, requires_grad=False)
        self.model.config.vocab_size = embeddings.shape[0]
        out = []
        with torch.inference_mode():
            for i in range(0, len(sentences), 64):
                batch = tokenizer(
                    sentences[i : i + 64], padding=True, truncation=True, max_length=128, return_tensors="pt"
                )
                hidden = self.model(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                ).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                out.append((hidden * mask).sum(1) / mask.sum(1))
        return torch.nn.functional.normalize(torch.cat(out), dim=1)


def _scores(torch, tgt, eng) -> dict:
    sim = tgt @ eng.T
    n = sim.shape[0]
    idx = torch.arange(n)
    off = sim.masked_fill(torch.eye(n, dtype=torch.bool), 0.0)
    return {
        "acc_t2e": round(float((sim.argmax(1) == idx).float().mean()), 4),
        "acc_e2t": round(float((sim.argmax(0) == idx).float().mean()), 4),
        "mean_cos": round(float(sim.diag().mean()), 4),
        "mean_cos_other": round(float(off.sum() / (n * (n - 1))), 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", type=Path, default=_default_models(), help="dir with multilingual-e5-small"
    )
    parser.add_argument("--data", type=Path, default=_default_data(), help="the shared data directory")
    parser.add_argument("--langs", default="amh,khm,tam,tat,tgl", help="Tatoeba languages (comma-separated)")
    parser.add_argument(
        "--vocab-size", type=int, default=10000, help="target vocabulary (paper ablation: 10k)"
    )
    parser.add_argument("--ft-dim", type=int, default=300)
    parser.add_argument("--ft-epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--work", type=Path, help="scratch directory (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "init_quality.json")
    args = parser.parse_args(argv)

    import torch

    from crossling.artifacts import library_versions
    from crossling.embeddings import ORIGINS, FastTextConfig, initialize, load_tokenizer

    base = args.models / "multilingual-e5-small"
    if not base.is_dir():
        parser.error(f"{base} not found: build it with `python ../shared/tools/base_models.py DIR`")
    scratch = tempfile.TemporaryDirectory(prefix="crossling-bench-quality-") if args.work is None else None
    work = Path(scratch.name) if scratch else args.work
    work.mkdir(parents=True, exist_ok=True)
    fasttext = FastTextConfig(dim=args.ft_dim, epochs=args.ft_epochs)
    encoder = _Encoder(base)
    base_tok = load_tokenizer(base)
    methods = [m for m in args.methods.split(",") if m]

    results = []
    for lang in [x for x in args.langs.split(",") if x]:
        pair = args.data / "tatoeba_laser" / f"tatoeba.{lang}-eng"
        src = _read_lines(pair.with_name(pair.name + f".{lang}"))
        eng = _read_lines(pair.with_name(pair.name + ".eng"))
        corpus, corpus_info = _corpus(args.data, lang, src)
        tok_dir = work / f"tok-{lang}"
        t0 = time.perf_counter()
        size = _train_tokenizer(corpus, args.vocab_size, tok_dir)
        target_tok = load_tokenizer(tok_dir)
        info = {
            "lang": lang,
            "pairs": len(src),
            "corpus": corpus_info | {"sentences": len(corpus), "characters": sum(map(len, corpus))},
            "tokenizer": {"requested": args.vocab_size, "trained": size, "rows": len(target_tok)},
            "tokenizer_train_s": round(time.perf_counter() - t0, 1),
            "methods": {},
        }
        print(
            f"{lang}: {len(src)} pairs, corpus {len(corpus)} lines, tokenizer {len(target_tok)} rows",
            flush=True,
        )
        eng_vec = encoder.embed(base_tok, eng, encoder.original)
        info["methods"]["base"] = _scores(torch, encoder.embed(base_tok, src, encoder.original), eng_vec)
        ids = torch.tensor([i for s in src for i in target_tok(s, add_special_tokens=False)["input_ids"]])
        for name in methods:
            method, _, alignment = name.partition("/")
            t0 = time.perf_counter()
            emb, report = initialize(
                (encoder.original, base_tok),
                target_tok,
                corpus,
                method=method,
                alignment=alignment or "procrustes",
                seed=args.seed,
                fasttext=fasttext,
                cache_dir=work / "fasttext-cache",
            )
            seconds = time.perf_counter() - t0
            used = collections.Counter(report.row_sources.origin[ids].tolist())
            row = _scores(torch, encoder.embed(target_tok, src, emb), eng_vec) | {
                "init_s": round(seconds, 1),
                "rows": report.rows,
                "tatoeba_token_origin": {ORIGINS[k]: round(v / len(ids), 3) for k, v in sorted(used.items())},
                "fasttext_vocab": (
                    {"base": report.fasttext.get("source_vocab"), "target": report.fasttext["target_vocab"]}
                    if report.fasttext
                    else None
                ),
                "details": report.details,
            }
            info["methods"][name] = row
            print(
                f"  {name:<22} acc t2e {row['acc_t2e']:.3f} e2t {row['acc_e2t']:.3f} "
                f"cos {row['mean_cos']:.3f} (other {row['mean_cos_other']:.3f})  "
                f"rows {report.rows}  {seconds:.1f} s",
                flush=True,
            )
        results.append(info)

    from importlib import metadata

    versions = library_versions() | {"fasttext": metadata.version("fasttext")}
    out = {
        "benchmark": "init_quality",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(),
        },
        "versions": versions,
        "settings": {
            "base": "multilingual-e5-small",
            "pooling": "mean over non-padding tokens, max_length 128",
            "vocab_size": args.vocab_size,
            "fasttext": fasttext.to_dict(),
            "seed": args.seed,
            "methods": methods,
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    print(
        "\n| lang | method | acc t2e | acc e2t | mean cos | cos non-pairs | semantic rows | sparsemax rows |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for info in results:
        for name, row in info["methods"].items():
            rows = row.get("rows", {})
            print(
                f"| {info['lang']} | {name} | {row['acc_t2e']:.3f} | {row['acc_e2t']:.3f} | "
                f"{row['mean_cos']:.3f} | {row['mean_cos_other']:.3f} | "
                f"{rows.get('semantic', '')} | {rows.get('sparsemax', '')} |"
            )
    print(f"wrote {args.out}")
    if scratch:
        scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
