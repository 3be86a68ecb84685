"""The error embedding initialisation raises for bad input (a CrosslingError, printed without traceback)."""

from __future__ import annotations

from crossling.errors import CrosslingError


class EmbeddingInitError(CrosslingError, ValueError):
    """The base model, the target tokenizer or the corpus cannot be used to initialise embeddings."""
