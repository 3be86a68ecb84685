"""Exceptions that carry enough context for a user to fix their input."""

from __future__ import annotations

from os import PathLike


class CrosslingError(Exception):
    """Base class: every error crossling raises on purpose derives from it.

    The CLI prints these as one line without a traceback; anything else is a bug.
    """


class ConfigError(CrosslingError, ValueError):
    """A configuration value is unknown, of the wrong type or out of range."""


class DataFormatError(CrosslingError, ValueError):
    """Input data is malformed; names the file and the 1-based line number."""

    def __init__(self, path: str | PathLike[str], line: int | None, message: str):
        self.path = str(path)
        self.line = line
        self.reason = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class ArtifactError(CrosslingError):
    """An artifact directory is missing, incomplete, or does not match the model it is loaded with."""


class NotBuiltError(CrosslingError):
    """A documented feature that this version of crossling does not implement yet."""
