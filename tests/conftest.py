"""Shared fixtures: tiny random models built once per test session, offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crossling.testing import tiny_bert, tiny_corpus, tiny_xlmr

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real data beside the checkout (or wherever CROSSLING_DATA points)."""
    root = Path(os.environ.get("CROSSLING_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    if not root.is_dir():
        pytest.fail(f"real test data not found at {root}; set CROSSLING_DATA")
    return root


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_xlmr_dir(tmp_path_factory) -> Path:
    return tiny_xlmr(tmp_path_factory.mktemp("tiny-xlmr"))


@pytest.fixture()
def toy_corpus(tmp_path) -> Path:
    path = tmp_path / "xx.txt"
    path.write_text("\n".join(tiny_corpus(200, "xx")) + "\n", encoding="utf-8")
    return path
