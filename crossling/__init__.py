"""crossling: adapt pretrained multilingual encoders to new languages and transfer tasks to them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crossling.errors import ArtifactError, ConfigError, CrosslingError, DataFormatError, NotBuiltError

__version__ = "0.1.0"

# Heavy modules (torch, transformers) load on first use, so `crossling --help` stays instant.
_LAZY = {
    "LanguagePack": "crossling.artifacts",
    "MultiSourcePredictor": "crossling.multisource",
    "TaskAdapter": "crossling.artifacts",
}

if TYPE_CHECKING:  # pragma: no cover
    from crossling.artifacts import LanguagePack, TaskAdapter
    from crossling.multisource import MultiSourcePredictor


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'crossling' has no attribute {name!r}")


__all__ = [
    "ArtifactError",
    "ConfigError",
    "CrosslingError",
    "DataFormatError",
    "LanguagePack",
    "MultiSourcePredictor",
    "NotBuiltError",
    "TaskAdapter",
    "__version__",
]
