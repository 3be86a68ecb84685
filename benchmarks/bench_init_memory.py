"""Benchmark: wall time and peak memory of `crossling init` against multilingual-e5-small's 250,037 rows.

Issue #3 asks that initialisation never build a dense |V_target| x |V_source| matrix (at 60k x 250k that
would be 60 GB of float32) and that peak memory above the loaded base stay under 2 GB however large the
vocabularies are. For each target vocabulary size this script

1. trains a SentencePiece unigram tokenizer of that size (``crossling.vocab.train_tokenizer``) on a
   multilingual corpus assembled from ``$CROSSLING_DATA`` (Bibles, AmericasNLP target sides, XNLI dev
   sentences: many scripts, so the base-tokenized fastText space is large too);
2. runs ``initialize(method="unibridge")`` in a fresh child process: the child loads the base embedding
   matrix and both tokenizers, records its resident memory (the baseline), resets the kernel's
   high-water mark (``/proc/self/clear_refs``), samples VmRSS every 10 ms while initialising, and
   reports peak - baseline as the extra memory; a second child repeats the run with the fastText cache
   warm;
3. adds a synthetic worst case: every one of the 250,037 base tokens and every target token gets a
   fastText vector (random), which is the largest similarity search the vocabularies allow.

Run from the repository root::

    python benchmarks/bench_init_memory.py                    # sizes 30000 and 60000, dim 300
    python benchmarks/bench_init_memory.py --sizes 10000 --ft-dim 50 --no-synthetic   # quick look

Results go to ``benchmarks/results/init_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _default_data() -> Path:
    return Path(os.environ.get("CROSSLING_DATA", REPO.parent / "shared" / "data"))


def _default_models() -> Path:
    return Path(os.environ.get("CROSSLING_MODELS", Path(__file__).resolve().parents[2] / "models"))


# ---------------------------------------------------------------------- memory probes
def _status_kb(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class _Sampler(threading.Thread):
    """Polls VmRSS: a second opinion on the peak where clear_refs is unavailable."""

    def __init__(self, interval: float = 0.01):
        super().__init__(daemon=True)
        self.interval = interval
        self.peak_kb = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak_kb = max(self.peak_kb, _status_kb("VmRSS"))
            time.sleep(self.interval)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return max(self.peak_kb, _status_kb("VmRSS"))


# ---------------------------------------------------------------------- child
def _child(spec: dict) -> dict:
    import numpy as np
    import torch

    from crossling.embeddings import (
        FastTextConfig,
        TokenVectors,
        Vocab,
        initialize,
        load_base_embeddings,
        load_tokenizer,
        unibridge_init,
    )

    start_kb = _status_kb("VmRSS")
    emb = load_base_embeddings(spec["base"])
    base_tok = load_tokenizer(spec["base"])
    target_tok = load_tokenizer(spec["tokenizer"])
    # safetensors maps the matrix lazily; make it resident so the baseline holds the loaded base model
    emb = emb.clone()
    fasttext = FastTextConfig(dim=spec["ft_dim"], epochs=spec["ft_epochs"], threads=spec["ft_threads"])
    result: dict = {"rss_after_imports_mb": round(start_kb / 1024, 1)}
    if spec["mode"] == "synthetic":
        # vectors for every id on both sides: the biggest search these vocabularies allow
        source_vocab = Vocab.from_tokenizer(base_tok, size=emb.shape[0])
        target_vocab = Vocab.from_tokenizer(target_tok)
        rng = np.random.default_rng(0)
        n_src, n_tgt, dim = len(source_vocab), len(target_vocab), fasttext.dim
        src = TokenVectors(np.arange(n_src), rng.standard_normal((n_src, dim), dtype=np.float32))
        tgt = TokenVectors(np.arange(n_tgt), rng.standard_normal((n_tgt, dim), dtype=np.float32))
        baseline_kb = _status_kb("VmRSS")
        clear_refs = _reset_peak()
        sampler = _Sampler()
        sampler.start()
        t0 = time.perf_counter()
        out, rows = unibridge_init(emb, source_vocab, target_vocab, src, tgt, seed=0)
        seconds = time.perf_counter() - t0
        peak_kb = max(sampler.stop(), _status_kb("VmHWM") if clear_refs else 0)
        result |= {"rows": rows.counts(), "details": rows.details, "fasttext_source_vocab": len(src)}
        result |= {
            "fasttext_target_vocab": len(tgt),
            "note": "the baseline includes the two random vector sets",
        }
    else:
        baseline_kb = _status_kb("VmRSS")
        clear_refs = _reset_peak()
        sampler = _Sampler()
        sampler.start()
        t0 = time.perf_counter()
        out, report = initialize(
            (emb, base_tok),
            target_tok,
            spec["corpus"],
            method="unibridge",
            alignment="procrustes",
            fasttext=fasttext,
            cache_dir=spec["cache_dir"],
        )
        seconds = time.perf_counter() - t0
        peak_kb = max(sampler.stop(), _status_kb("VmHWM") if clear_refs else 0)
        result |= {
            "rows": report.rows,
            "timings": report.timings,
            "fasttext_source_vocab": report.fasttext["source_vocab"],
            "fasttext_target_vocab": report.fasttext["target_vocab"],
            "fasttext_cache_hits": report.fasttext["cache_hits"],
            "corpus_tokens_base_tokenizer": report.fasttext["source_corpus_tokens"],
            "corpus_tokens_target_tokenizer": report.fasttext["target_corpus_tokens"],
            "details": report.details,
        }
    del out
    return result | {
        "source_rows": int(emb.shape[0]),
        "target_rows": len(target_tok),
        "baseline_rss_mb": round(baseline_kb / 1024, 1),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "extra_mb": round((peak_kb - baseline_kb) / 1024, 1),
        "dense_matrix_would_be_mb": round(len(target_tok) * int(emb.shape[0]) * 4 / 2**20, 1),
        "wall_s": round(seconds, 2),
        "peak_method": "VmHWM after clear_refs + 10 ms VmRSS sampling"
        if clear_refs
        else "10 ms VmRSS sampling",
        "torch_threads": torch.get_num_threads(),
    }


def _run_child(spec: dict) -> dict:
    with tempfile.NamedTemporaryFile("w+", suffix=".json") as fh:
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            json.dumps(spec),
            "--child-out",
            fh.name,
        ]
        subprocess.run(cmd, check=True, cwd=REPO)
        return json.loads(Path(fh.name).read_text())


# ---------------------------------------------------------------------- corpus
def _multilingual_corpus(data: Path, out: Path, max_lines: int) -> dict:
    """Bibles (amh, cni, nah, quy), AmericasNLP target sides, XNLI dev sentences; one sentence a line."""
    sources: list[tuple[str, list[str]]] = []
    for tsv in sorted((data / "bible_corpus").glob("*.verses.tsv")):
        lines = [ln.split("\t", 1)[1] for ln in tsv.read_text(encoding="utf-8").splitlines() if "\t" in ln]
        sources.append((tsv.name, lines))
    for train in sorted((data / "americasnlp2021_parallel").glob("*/train.*")):
        if not train.name.endswith(".es"):
            sources.append(
                (f"{train.parent.name}/{train.name}", train.read_text(encoding="utf-8").splitlines())
            )
    for tsv in sorted((data / "xnli_xtreme").glob("dev-*.tsv")):
        seen: dict[str, None] = {}
        for ln in tsv.read_text(encoding="utf-8").splitlines():
            for sent in ln.split("\t")[:2]:
                seen.setdefault(sent, None)
        sources.append((tsv.name, list(seen)))
    lines: list[str] = []
    # round-robin over the sources so a --max-lines cut keeps every script
    iters = [iter(s[1]) for s in sources]
    while iters and len(lines) < max_lines:
        alive = []
        for it in iters:
            line = next(it, None)
            if line is not None:
                if line.strip():
                    lines.append(line.strip())
                alive.append(it)
        iters = alive
    lines = lines[:max_lines]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {
        "files": [name for name, _ in sources],
        "sentences": len(lines),
        "characters": sum(len(x) for x in lines),
    }


# ---------------------------------------------------------------------- main
def _machine() -> dict:
    import torch

    mem_kb = 0
    try:
        mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    except (OSError, AttributeError):
        pass
    cpu = ""
    try:
        cpu = re.search(r"model name\s+:\s+(.*)", Path("/proc/cpuinfo").read_text()).group(1)
    except (OSError, AttributeError):
        pass
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "memory_gb": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", type=Path, default=_default_models(), help="dir with multilingual-e5-small"
    )
    parser.add_argument("--data", type=Path, default=_default_data(), help="the shared data directory")
    parser.add_argument("--sizes", default="30000,60000", help="target vocabulary sizes (comma-separated)")
    parser.add_argument("--ft-dim", type=int, default=300)
    parser.add_argument("--ft-epochs", type=int, default=3)
    parser.add_argument(
        "--ft-threads", type=int, default=2, help="fastText threads (memory does not depend on it)"
    )
    parser.add_argument("--max-lines", type=int, default=150_000, help="corpus size cap (sentences)")
    parser.add_argument("--no-synthetic", action="store_true", help="skip the all-tokens-have-vectors case")
    parser.add_argument("--work", type=Path, help="scratch directory (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "init_memory.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        result = _child(json.loads(args.child))
        Path(args.child_out).write_text(json.dumps(result))
        return 0

    from crossling.artifacts import library_versions
    from crossling.vocab import train_tokenizer

    base = args.models / "multilingual-e5-small"
    if not base.is_dir():
        parser.error(f"{base} not found: build it with `python ../shared/tools/base_models.py DIR`")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    scratch = tempfile.TemporaryDirectory(prefix="crossling-bench-init-") if args.work is None else None
    work = Path(scratch.name) if scratch else args.work
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus.txt"
    corpus_info = _multilingual_corpus(args.data, corpus, args.max_lines)
    print(f"corpus: {corpus_info['sentences']} sentences, {corpus_info['characters']} characters", flush=True)

    runs = []
    for size in sizes:
        tok_dir = work / f"tok-{size}"
        t0 = time.perf_counter()
        if not tok_dir.is_dir():
            train_tokenizer(corpus, size, tok_dir)
        tok_seconds = time.perf_counter() - t0
        cache = work / f"cache-{size}"  # per size: the cold run must train both fastText spaces
        spec = {
            "base": str(base),
            "tokenizer": str(tok_dir),
            "corpus": str(corpus),
            "ft_dim": args.ft_dim,
            "ft_epochs": args.ft_epochs,
            "ft_threads": args.ft_threads,
            "cache_dir": str(cache),
        }
        for mode in ("cold", "warm"):
            print(f"size {size}: {mode} run ...", flush=True)
            result = _run_child(spec | {"mode": mode})
            result |= {"target_vocab_size": size, "mode": mode, "tokenizer_train_s": round(tok_seconds, 1)}
            print(
                f"  wall {result['wall_s']} s, baseline {result['baseline_rss_mb']} MB, "
                f"peak {result['peak_rss_mb']} MB, extra {result['extra_mb']} MB",
                flush=True,
            )
            runs.append(result)
    if not args.no_synthetic:
        size = max(sizes)
        print(f"synthetic worst case at size {size} ...", flush=True)
        spec = {
            "base": str(base),
            "tokenizer": str(work / f"tok-{size}"),
            "ft_dim": args.ft_dim,
            "ft_epochs": args.ft_epochs,
            "ft_threads": args.ft_threads,
            "mode": "synthetic",
        }
        result = _run_child(spec) | {"target_vocab_size": size, "mode": "synthetic"}
        print(f"  wall {result['wall_s']} s, extra {result['extra_mb']} MB", flush=True)
        runs.append(result)

    from importlib import metadata

    versions = library_versions()
    versions["fasttext"] = metadata.version("fasttext")
    report = {
        "benchmark": "init_memory",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "versions": versions,
        "settings": {
            "base": "multilingual-e5-small",
            "method": "unibridge",
            "alignment": "procrustes",
            "fasttext": {"dim": args.ft_dim, "epochs": args.ft_epochs, "threads": args.ft_threads},
            "block_size": 4096,
            "sizes": sizes,
        },
        "corpus": corpus_info,
        "runs": runs,
        "limit_extra_mb": 2048,
        "all_under_limit": all(r["extra_mb"] < 2048 for r in runs),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(
        "\n| target vocab | run | fastText spaces (base / target tokens) | wall s | baseline MB | peak MB "
        "| extra MB |"
    )
    print("|---:|---|---|---:|---:|---:|---:|")
    for r in runs:
        print(
            f"| {r['target_vocab_size']} | {r['mode']} | "
            f"{r['fasttext_source_vocab']} / {r['fasttext_target_vocab']} | {r['wall_s']} | "
            f"{r['baseline_rss_mb']} | {r['peak_rss_mb']} | {r['extra_mb']} |"
        )
    print(f"wrote {args.out}")
    if scratch:
        scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
