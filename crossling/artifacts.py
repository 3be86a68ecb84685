"""On-disk artifacts: LanguagePack and TaskAdapter directories (`save_pretrained` / `from_pretrained`).

A LanguagePack directory::

    crossling.json            what it is: language, base model identity, stage reports, versions
    tokenizer/                a new vocabulary (absent for MAD-X style packs that keep the base one)
    embeddings.safetensors    the new embedding matrix, key "embeddings" (absent with the base vocabulary)
    adapter/                  the language adapter in `adapters`' own format (invertible part included)
    mlm_head.safetensors      an MLM head trained or fitted for the pack, if any

A TaskAdapter directory::

    crossling.json            task, label names in id order, source language, the pack it was trained on
    adapter/                  task adapter + head in `adapters`' own format

Only safetensors and JSON: nothing is unpickled. Every save goes to a temporary sibling directory that
is renamed into place at the end, so a crash in the middle of a save leaves the previous version intact.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from crossling import __version__
from crossling.errors import ArtifactError

METADATA_FILE = "crossling.json"
FORMAT_VERSION = 1


# ---------------------------------------------------------------------- atomic writes
def _umask() -> int:
    """The process's umask, read without changing it where Linux allows (setting it to read it, as
    os.umask must, briefly leaves other threads' new files world-writable)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o077)  # the most private value in the moment between the two calls
    os.umask(umask)
    return umask


def published_permissions(path: str | os.PathLike[str]) -> None:
    """Give a file or folder made by `tempfile` (0600 / 0700) the permissions `open` or `mkdir` would
    have given it under the user's umask: it is about to become a result others may need to read."""
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces `path` only if the block finishes.

    The temporary directory is a sibling of `path` (same filesystem, so the final rename is atomic).
    On error it is removed and `path` is untouched. Replacing an existing directory takes two renames
    (POSIX cannot swap directories atomically); between them the old version is kept as
    `.NAME.old-*` beside it and is removed once the new one is in place.
    """
    final = Path(path).absolute()
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    published_permissions(tmp)
    old = None
    if final.exists():
        if not final.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
            raise ArtifactError(f"{final} exists and is not a directory; refusing to replace it")
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        old.rmdir()
        os.rename(final, old)
    os.rename(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def check_output_directory(path: str | os.PathLike[str], format_: str, what: str | None = None) -> Path:
    """Refuse, before any work, an output directory the finished run could not or should not replace:
    a file, or a directory holding anything but an earlier artifact of format `format_` (so a mistyped
    ``--out .`` cannot delete a project); `what` names the artifact in the message. Returns the
    absolute path."""
    out = Path(path).absolute()
    if out.exists() and not out.is_dir():
        raise ArtifactError(f"{path} exists and is not a directory; choose another output directory")
    if out.is_dir() and any(out.iterdir()):
        try:
            found = json.loads((out / METADATA_FILE).read_text(encoding="utf-8")).get("format")
        except (OSError, ValueError, AttributeError):
            found = None
        if found != format_:
            what = what or format_.removeprefix("crossling.")
            raise ArtifactError(
                f"{path} exists and is not a {what}: refusing to replace it (it would be deleted); "
                "choose another output directory"
            )
    return out


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write `text` to `path` through a temporary sibling file and `os.replace`; returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())  # else a power loss can leave the renamed file empty
        published_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write JSON to `path` through a temporary file and `os.replace`."""
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return obj.to_dict() if hasattr(obj, "to_dict") else dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy / torch scalars and arrays
        return obj.tolist()
    raise TypeError(f"cannot store {type(obj).__name__} in crossling.json")


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape an artifact, recorded in every crossling.json."""
    from importlib import metadata

    versions = {"crossling": __version__, "python": platform.python_version()}
    for dist in ("torch", "transformers", "adapters", "tokenizers", "sentencepiece", "safetensors"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions


def _read_metadata(path: Path, expected_format: str) -> dict[str, Any]:
    meta_path = path / METADATA_FILE
    if not path.is_dir():
        raise ArtifactError(f"{path} is not a directory (expected a crossling {expected_format})")
    if not meta_path.is_file():
        raise ArtifactError(
            f"{path} has no {METADATA_FILE}: not a crossling {expected_format}, or incomplete"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{meta_path}: unreadable metadata ({err})") from None
    if meta.get("format") != expected_format:
        raise ArtifactError(
            f"{path} holds a {meta.get('format', 'unknown artifact')}, not a {expected_format}"
        )
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ArtifactError(
            f"{path} was written by a newer crossling (format {meta['format_version']}); upgrade crossling"
        )
    return meta


# ---------------------------------------------------------------------- base model identity
_NOT_BASE = {
    "pooler",
    "adapters",
    "invertible_adapters",
    "heads",
    "prefix_tuning",
    "prompt_tuning",
    "shared_parameters",
}


@dataclasses.dataclass(frozen=True)
class BaseModelIdentity:
    """What a pack was built on: enough to refuse a pack on the wrong base, cheap to compute.

    `fingerprint` hashes every encoder parameter's name, shape, dtype and a strided sample of at most
    4096 of its values, so two checkpoints of one architecture differ while a 1 GB model hashes in well
    under a second. Heads, the pooler (randomly initialised when an MLM checkpoint is loaded as a bare
    encoder) and adapter weights are left out: they are not what a pack depends on.
    """

    name_or_path: str
    model_type: str
    hidden_size: int
    num_hidden_layers: int
    vocab_size: int
    fingerprint: str

    @classmethod
    def of(cls, model: Any) -> BaseModelIdentity:
        import torch

        digest = hashlib.sha256()
        encoder = getattr(model, "base_model", model)
        for name, tensor in sorted(encoder.state_dict().items()):
            if any(part in _NOT_BASE for part in name.split(".")):
                continue
            flat = tensor.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // 4096)].to(torch.float32).contiguous().cpu()
            digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
            digest.update(sample.numpy().tobytes())
        config = model.config
        return cls(
            name_or_path=str(getattr(config, "_name_or_path", "") or ""),
            model_type=str(config.model_type),
            hidden_size=int(config.hidden_size),
            num_hidden_layers=int(config.num_hidden_layers),
            vocab_size=int(config.vocab_size),
            fingerprint=digest.hexdigest()[:16],
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BaseModelIdentity:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        name = self.name_or_path or "<unnamed>"
        return f"{name} ({self.model_type}, hidden {self.hidden_size}, fingerprint {self.fingerprint})"

    def check_matches(self, other: BaseModelIdentity, artifact: str) -> None:
        """Raise ArtifactError naming both models unless `other` is the same base model."""
        if self.fingerprint != other.fingerprint:
            raise ArtifactError(
                f"{artifact} was built on base model {self.describe()}, but it is being loaded with "
                f"{other.describe()}; pass the base model the artifact was built on"
            )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------- LanguagePack
@dataclasses.dataclass
class LanguagePack:
    """A language's adaptation of a base encoder: vocabulary, embeddings, language adapter, reports.

    Holds file locations and metadata; the heavy parts (tokenizer, embeddings) load on first access.
    """

    language: str
    base: BaseModelIdentity
    path: Path | None = None
    reports: dict[str, Any] = dataclasses.field(default_factory=dict)
    versions: dict[str, str] = dataclasses.field(default_factory=library_versions)
    created: str = dataclasses.field(default_factory=_now)
    # where to load the base model from when it is not the recorded name_or_path (e.g. moved files)
    base_source: str | None = dataclasses.field(default=None, repr=False, compare=False)
    _loaded: Any = dataclasses.field(default=None, init=False, repr=False, compare=False)

    FORMAT = "crossling.LanguagePack"

    @property
    def has_own_vocabulary(self) -> bool:
        return self.path is not None and (self.path / "tokenizer").is_dir()

    @property
    def adapter_dir(self) -> Path | None:
        return self.path / "adapter" if self.path is not None and (self.path / "adapter").is_dir() else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.FORMAT,
            "format_version": FORMAT_VERSION,
            "language": self.language,
            "base_model": self.base.to_dict(),
            "vocabulary": "new" if self.has_own_vocabulary else "base",
            "reports": self.reports,
            "versions": self.versions,
            "created": self.created,
        }

    def save_pretrained(
        self,
        path: str | os.PathLike[str],
        *,
        tokenizer: Any | None = None,
        embeddings: Any | None = None,
        mlm_head: dict[str, Any] | None = None,
        write_adapter: Callable[[Path], None] | None = None,
    ) -> Path:
        """Write the pack to `path` atomically and return it.

        `tokenizer` and `embeddings` (a [vocab, hidden] tensor) go together: a pack either has its own
        vocabulary or keeps the base one. `write_adapter(dir)` writes the language adapter (e.g.
        ``lambda d: model.save_adapter(d, "khm")``). Parts that are not given are carried over from
        the pack's current directory when it has one, so re-saving with new reports keeps them.
        """
        if (tokenizer is None) != (embeddings is None) and self.path is None:
            raise ArtifactError(
                "a LanguagePack with its own vocabulary needs both a tokenizer and embeddings"
            )
        if embeddings is not None and tokenizer is not None and int(embeddings.shape[0]) < len(tokenizer):
            raise ArtifactError(
                f"embeddings have {embeddings.shape[0]} rows but the tokenizer has {len(tokenizer)} tokens"
            )
        from safetensors.torch import save_file

        previous = self.path
        with atomic_directory(path) as tmp:
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp / "tokenizer")
            elif previous is not None and (previous / "tokenizer").is_dir():
                shutil.copytree(previous / "tokenizer", tmp / "tokenizer")
            if embeddings is not None:
                save_file(
                    {"embeddings": embeddings.detach().contiguous().cpu()}, tmp / "embeddings.safetensors"
                )
            elif previous is not None and (previous / "embeddings.safetensors").is_file():
                shutil.copy2(previous / "embeddings.safetensors", tmp / "embeddings.safetensors")
            if mlm_head is not None:
                save_file(
                    {k: v.detach().contiguous().cpu() for k, v in mlm_head.items()},
                    tmp / "mlm_head.safetensors",
                )
            elif previous is not None and (previous / "mlm_head.safetensors").is_file():
                shutil.copy2(previous / "mlm_head.safetensors", tmp / "mlm_head.safetensors")
            if write_adapter is not None:
                write_adapter(tmp / "adapter")
            elif previous is not None and (previous / "adapter").is_dir():
                shutil.copytree(previous / "adapter", tmp / "adapter")
            meta = self.to_dict()
            meta["vocabulary"] = "new" if (tmp / "tokenizer").is_dir() else "base"
            write_json_atomic(tmp / METADATA_FILE, meta)
        self.path = Path(path).absolute()
        return self.path

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], *, base: Any | None = None) -> LanguagePack:
        """Load a pack's metadata (the model loads on first use of `.model`, `.tokenizer` or `.encode`).

        `base` is a path/name to load the base model from instead of the recorded one, or an already
        loaded model; either way a pack built on another base model is refused, naming both.
        """
        path = Path(path).absolute()
        meta = _read_metadata(path, cls.FORMAT)
        if meta.get("vocabulary") == "new":
            for part in ("tokenizer", "embeddings.safetensors"):
                if not (path / part).exists():
                    raise ArtifactError(f"{path} is incomplete: its {part} is missing")
        pack = cls(
            language=meta["language"],
            base=BaseModelIdentity.from_dict(meta["base_model"]),
            path=path,
            reports=meta.get("reports", {}),
            versions=meta.get("versions", {}),
            created=meta.get("created", ""),
        )
        if isinstance(base, (str, os.PathLike)):
            pack.base_source = str(base)
        elif base is not None:
            pack.base.check_matches(BaseModelIdentity.of(base), f"LanguagePack {path}")
        return pack

    def load_model(self, base: str | os.PathLike[str] | None = None) -> Any:
        """Tokenizer + masked-LM model with this pack's vocabulary and language adapter active.

        `base` defaults to the base model recorded in the pack; a different base is refused. Returns a
        `crossling.language.AdaptableModel` (`.model`, `.tokenizer`), cached on the pack.
        """
        if self._loaded is None or base is not None:
            from crossling.language import load_pack_model

            self._loaded = load_pack_model(self, base if base is not None else self.base_source)
        return self._loaded

    @property
    def model(self) -> Any:
        return self.load_model().model

    @property
    def tokenizer(self) -> Any:
        return self.load_model().tokenizer

    def encode(self, sentences: list[str], *, batch_size: int = 32, max_length: int = 128) -> Any:
        """Mean-pooled final hidden states of `sentences` with the language adapter active: [n, hidden]."""
        from crossling.language import encode

        loaded = self.load_model()
        return encode(loaded.model, loaded.tokenizer, sentences, batch_size=batch_size, max_length=max_length)

    def load_tokenizer(self, base_tokenizer: Any | None = None) -> Any:
        """The pack's own tokenizer, or `base_tokenizer` for a pack that keeps the base vocabulary."""
        if self.has_own_vocabulary:
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(self.path / "tokenizer")
        if base_tokenizer is None:
            raise ArtifactError(
                f"LanguagePack {self.path} keeps the base vocabulary: pass the base tokenizer"
            )
        return base_tokenizer

    def load_embeddings(self) -> Any | None:
        """The pack's embedding matrix, or None for a pack that keeps the base vocabulary."""
        if self.path is None or not (self.path / "embeddings.safetensors").is_file():
            return None
        from safetensors.torch import load_file

        return load_file(self.path / "embeddings.safetensors")["embeddings"]


# ---------------------------------------------------------------------- TaskAdapter
@dataclasses.dataclass
class TaskAdapter:
    """A task adapter with its head, trained on one source language over one LanguagePack."""

    task: str
    labels: list[str]
    source_language: str
    base: BaseModelIdentity
    language_pack: str | None = None
    path: Path | None = None
    eval_results: dict[str, Any] = dataclasses.field(default_factory=dict)
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    versions: dict[str, str] = dataclasses.field(default_factory=library_versions)
    created: str = dataclasses.field(default_factory=_now)

    FORMAT = "crossling.TaskAdapter"

    def __post_init__(self) -> None:
        if len(set(self.labels)) != len(self.labels):
            dupes = sorted({label for label in self.labels if self.labels.count(label) > 1})
            raise ArtifactError(f"TaskAdapter labels must be unique; repeated: {', '.join(dupes)}")

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.FORMAT,
            "format_version": FORMAT_VERSION,
            "task": self.task,
            "labels": self.labels,
            "source_language": self.source_language,
            "language_pack": self.language_pack,
            "base_model": self.base.to_dict(),
            "eval_results": self.eval_results,
            "config": self.config,
            "versions": self.versions,
            "created": self.created,
        }

    def save_pretrained(
        self, path: str | os.PathLike[str], *, write_adapter: Callable[[Path], None] | None = None
    ) -> Path:
        """Write atomically; `write_adapter(dir)` saves adapter + head (e.g. `model.save_adapter`)."""
        previous = self.path
        with atomic_directory(path) as tmp:
            if write_adapter is not None:
                write_adapter(tmp / "adapter")
            elif previous is not None and (previous / "adapter").is_dir():
                shutil.copytree(previous / "adapter", tmp / "adapter")
            write_json_atomic(tmp / METADATA_FILE, self.to_dict())
        self.path = Path(path).absolute()
        return self.path

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], *, base: Any | None = None) -> TaskAdapter:
        path = Path(path).absolute()
        meta = _read_metadata(path, cls.FORMAT)
        adapter = cls(
            task=meta["task"],
            labels=list(meta["labels"]),
            source_language=meta["source_language"],
            base=BaseModelIdentity.from_dict(meta["base_model"]),
            language_pack=meta.get("language_pack"),
            path=path,
            eval_results=meta.get("eval_results", {}),
            config=meta.get("config", {}),
            versions=meta.get("versions", {}),
            created=meta.get("created", ""),
        )
        if base is not None:
            adapter.base.check_matches(BaseModelIdentity.of(base), f"TaskAdapter {path}")
        return adapter


def check_same_labels(adapters: list[TaskAdapter]) -> list[str]:
    """The shared label list of several task adapters, or an error naming the differing labels."""
    if not adapters:
        raise ArtifactError("no task adapters given")
    first = adapters[0]
    for other in adapters[1:]:
        if other.task != first.task:
            raise ArtifactError(
                f"task adapters disagree on the task: "
                f"{first.path} is {first.task}, {other.path} is {other.task}"
            )
        if set(other.labels) != set(first.labels):
            only_first = sorted(set(first.labels) - set(other.labels))
            only_other = sorted(set(other.labels) - set(first.labels))
            raise ArtifactError(
                f"label sets differ between {first.path} and {other.path}: "
                f"only in the first: {only_first or 'none'}; only in the second: {only_other or 'none'}"
            )
    return list(first.labels)
