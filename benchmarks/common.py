"""Shared helpers for benchmarks: where data and models are, machine facts, result files."""

from __future__ import annotations

import os
import platform
import resource
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# bench_macular.py runs these; report.py renders them (one list, so the two cannot drift apart)
MACULAR_METHODS = (
    "adapter",
    "code-switch-only",
    "macular",
    "no-task-adversarial",
    "no-language-adversarial",
    "no-consistency",
)
MACULAR_NLI_TARGETS = ("de", "es", "fr", "ru", "sw")


def data_root() -> Path:
    root = Path(os.environ.get("CROSSLING_DATA", ROOT.parent / "shared" / "data"))
    if not root.is_dir():
        sys.exit(f"benchmark data not found at {root}: set CROSSLING_DATA")
    return root


def model_dir(name: str) -> Path:
    """A real base model built by `python ../shared/tools/base_models.py DIR` (DIR: $CROSSLING_MODELS)."""
    root = Path(os.environ.get("CROSSLING_MODELS", ROOT.parent / "models"))
    path = root / name
    if not (path / "config.json").is_file():
        sys.exit(
            f"{path} not found: run `python ../shared/tools/base_models.py {root}` (or set CROSSLING_MODELS)"
        )
    return path


def machine() -> dict[str, Any]:
    from crossling.artifacts import library_versions
    from crossling.training_utils import _bf16_is_native

    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "torch_threads": __import__("torch").get_num_threads(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        # bf16 is 1.4-1.6x faster than fp32 where native and many times slower where emulated
        "cpu_bf16_native": _bf16_is_native(),
        "versions": library_versions(),
    }


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_result(name: str, result: dict[str, Any]) -> Path:
    from crossling.artifacts import write_json_atomic

    path = RESULTS / f"{name}.json"
    write_json_atomic(path, {"benchmark": name, "machine": machine(), **result})
    print(f"wrote {path.relative_to(ROOT)}")
    return path
