"""Corpus cleaning in the spirit of UniBERT's preprocessing, streaming line by line.

Per line, in order: remove hidden characters, strip markup remnants (HTML tags and entities,
wiki links/templates/emphasis/headings), normalise whitespace; then drop the line if it is empty,
only URLs/e-mail addresses or only ISBNs, more than 70% digits, or too short. Every line is
counted once, under ``kept`` or its first ``dropped_*`` reason, so
``total == kept + dropped``. The ``stripped_markup``, ``removed_hidden_chars`` and
``normalised_whitespace`` counters count lines that step changed, whether or not they were kept.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from crossling.artifacts import published_permissions
from crossling.data._io import PathLike, iter_lines

# Zero-width (non-)joiners are format characters, but they change spelling in Persian, Indic scripts
# and Sinhala, so they are kept unless asked otherwise.
_JOINERS = frozenset("\u200c\u200d")

_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9:-]*(?:\s[^<>]*)?/?>")
_HTML_ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
_WIKI_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")  # innermost first; applied until nothing changes
_WIKI_FILE_LINK = re.compile(
    r"\[\[(?:File|Image|Category|Datei|Fichier|Archivo|Kategorie):[^\[\]]*\]\]", re.I
)
_WIKI_LINK = re.compile(r"\[\[(?:[^\[\]|]*\|)?([^\[\]|]*)\]\]")
_WIKI_EXT_LINK = re.compile(r"\[(?:https?|ftp)://[^\s\]]+(?:\s+([^\]]*))?\]")
# ''italic'' and '''bold''' only as a pair around text at word edges: a lone or mid-word '' is
# spelling in some orthographies (Guarani "va''erã" in the AmericasNLP data) and must stay.
_WIKI_EMPHASIS = re.compile(r"(?<![\w'])('{2,5})(?=[^\s'])(.+?)(?<=[^\s'])\1(?![\w'])")
_WIKI_HEADING = re.compile(r"^\s*(=+)\s*(.*?)\s*\1\s*$")

_URL = re.compile(r"(?:https?://|ftp://|www\.)\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.I)
_ISBN = re.compile(r"\bISBN(?:-1[03])?\s*:?\s*[0-9][0-9 -]{8,15}[0-9Xx]\b", re.I)


@dataclass
class CleaningReport:
    """Line counts of one cleaning run (see the module docstring for what each counts)."""

    total: int = 0
    kept: int = 0
    dropped_empty: int = 0
    dropped_url: int = 0
    dropped_isbn: int = 0
    dropped_digits: int = 0
    dropped_short: int = 0
    stripped_markup: int = 0
    removed_hidden_chars: int = 0
    normalised_whitespace: int = 0

    @property
    def dropped(self) -> int:
        return self.total - self.kept

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def __str__(self) -> str:
        width = max(len(k) for k in self.as_dict())
        return "\n".join(f"{k:<{width}}  {v}" for k, v in self.as_dict().items())


def remove_hidden_chars(text: str, *, keep_joiners: bool = True) -> str:
    """Remove control and format characters (zero-width space, BOM, soft hyphen, bidi marks).

    Whitespace controls (tab, U+0085, ...) are kept for whitespace normalisation to turn into spaces.
    """
    if text.isprintable():  # fast path: the vast majority of lines
        return text
    return "".join(
        ch
        for ch in text
        if ch.isprintable()
        or ch.isspace()
        or (keep_joiners and ch in _JOINERS)
        or unicodedata.category(ch) not in ("Cc", "Cf")
    )


def strip_markup(text: str) -> str:
    """Remove HTML tags/comments/entities and wiki markup; keep the visible text of links."""
    if "<" in text:
        text = _HTML_COMMENT.sub(" ", text)
        text = _HTML_TAG.sub(" ", text)
    if "&" in text and _HTML_ENTITY.search(text):
        text = html.unescape(text)
    if "{{" in text:
        previous = None
        while previous != text:
            previous, text = text, _WIKI_TEMPLATE.sub(" ", text)
    if "[" in text:
        text = _WIKI_FILE_LINK.sub(" ", text)
        text = _WIKI_LINK.sub(r"\1", text)
        text = _WIKI_EXT_LINK.sub(lambda m: m.group(1) or " ", text)
    if "''" in text:
        text = _WIKI_EMPHASIS.sub(r"\2", text)
    if "=" in text:
        text = _WIKI_HEADING.sub(r"\2", text)
    return text


def _digit_ratio(text: str) -> float:
    """Fraction of digits among the non-space characters of a whitespace-normalised line."""
    chars = len(text) - text.count(" ")
    return sum(map(str.isdigit, text)) / chars if chars else 0.0


# Cheap substring tests first: the regexes then run on the few lines that could match.
def _only_urls(text: str) -> bool:
    return ("://" in text or "www." in text or "@" in text) and _only(_URL, text)


def _only_isbns(text: str) -> bool:
    return ("SBN" in text or "sbn" in text) and _only(_ISBN, text)


def _only(pattern: re.Pattern[str], text: str) -> bool:
    """True if `text` has a match of `pattern` and nothing alphanumeric besides."""
    rest, n = pattern.subn(" ", text)
    return n > 0 and not any(ch.isalnum() for ch in rest)


def clean_lines(
    lines: Iterable[str],
    *,
    min_chars: int = 10,
    min_words: int = 1,
    max_digit_ratio: float = 0.7,
    markup: bool = True,
    hidden: bool = True,
    keep_joiners: bool = True,
    report: CleaningReport | None = None,
) -> Iterator[str]:
    """Yield the cleaned lines that survive; counts go into `report` as the iterator is consumed.

    min_chars / min_words: drop lines shorter than this (words = whitespace-separated, so keep
    min_words at 1 for Chinese, Japanese or Thai). max_digit_ratio: drop lines whose non-space
    characters are more than this fraction digits. markup / hidden: enable those steps.
    keep_joiners: keep ZWJ/ZWNJ when removing hidden characters.
    """
    r = report if report is not None else CleaningReport()
    for raw in lines:
        r.total += 1
        line = raw.rstrip("\r\n")
        if hidden:
            cleaned = remove_hidden_chars(line, keep_joiners=keep_joiners)
            r.removed_hidden_chars += cleaned != line
            line = cleaned
        if markup:
            cleaned = strip_markup(line)
            r.stripped_markup += cleaned != line
            line = cleaned
        cleaned = " ".join(line.split())
        r.normalised_whitespace += cleaned != line
        line = cleaned
        if not line:
            r.dropped_empty += 1
        elif _only_urls(line):
            r.dropped_url += 1
        elif _only_isbns(line):
            r.dropped_isbn += 1
        elif _digit_ratio(line) > max_digit_ratio:
            r.dropped_digits += 1
        elif len(line) < min_chars or len(line.split()) < min_words:
            r.dropped_short += 1
        else:
            r.kept += 1
            yield line


def clean_file(
    source: PathLike,
    target: PathLike,
    *,
    encoding: str = "utf-8",
    min_chars: int = 10,
    min_words: int = 1,
    max_digit_ratio: float = 0.7,
    markup: bool = True,
    hidden: bool = True,
    keep_joiners: bool = True,
) -> CleaningReport:
    """Clean `source` into `target` (UTF-8, one line each) and return the report.

    Writes a temporary file in the target's folder and renames it over `target` only when
    everything succeeded, so an interrupted run never leaves a half-written corpus (and
    `source` may be `target`). The options are those of `clean_lines`.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    report = CleaningReport()
    lines = (line for _, line in iter_lines(source, encoding))
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            cleaned = clean_lines(
                lines,
                min_chars=min_chars,
                min_words=min_words,
                max_digit_ratio=max_digit_ratio,
                markup=markup,
                hidden=hidden,
                keep_joiners=keep_joiners,
                report=report,
            )
            for line in cleaned:
                out.write(line + "\n")
        published_permissions(tmp)  # mkstemp made it 0600
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return report
