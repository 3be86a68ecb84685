"""Shared builders and fixtures for the task-adapter tests (tiny offline models, toy labelled data).

Imported by tests/test_tasks*.py, test_adversarial*.py and test_evaluation*.py; it holds no tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from crossling.config import TrainingConfig
from crossling.language import build_adaptable_model, save_language_pack
from crossling.testing import tiny_corpus, tiny_xlmr

NAMES = {"amina": "PER", "juma": "PER", "nairobi": "LOC", "lilongwe": "LOC"}
FAST = TrainingConfig(
    max_steps=12, batch_size=8, learning_rate=5e-3, save_steps=4, eval_steps=4, max_length=64
)


def ner_records(n: int, lang: str = "en", seed: int = 0) -> list[dict]:
    """Toy NER: the shared names are PER/LOC, every other word O."""
    out = []
    for sentence in tiny_corpus(n, lang, seed=seed):
        tokens = sentence.rstrip(".").split() + ["."]
        out.append(
            {
                "tokens": tokens,
                "tags": [f"B-{NAMES[t.lower()]}" if t.lower() in NAMES else "O" for t in tokens],
            }
        )
    return out


def nli_records(n: int, lang: str = "en", seed: int = 0) -> list[dict]:
    """Toy NLI whose label is given away by a marker word opening the hypothesis."""
    sentences = tiny_corpus(2 * n, lang, seed=seed)
    markers = {"entailment": "kubwa", "neutral": "dogo", "contradiction": "kijani"}  # never in "en"
    out = []
    for i in range(n):
        label = tuple(markers)[i % 3]
        # Mostly marker: a tiny random encoder's frozen attention averages over the tokens, so the
        # label must dominate the average for an adapter to learn it in a few steps.
        hypothesis = " ".join([markers[label]] * 6)
        out.append({"text_a": " ".join(sentences[i].split()[:2]), "text_b": hypothesis, "label": label})
    return out


def write_xtreme(path: Path, records: list[dict]) -> Path:
    blocks = ["\n".join(f"{t}\t{g}" for t, g in zip(r["tokens"], r["tags"], strict=True)) for r in records]
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


def write_nli(path: Path, records: list[dict]) -> Path:
    path.write_text(
        "".join(f"{r['text_a']}\t{r['text_b']}\t{r['label']}\n" for r in records), encoding="utf-8"
    )
    return path


def make_pack(base: Path, out: Path, language: str, *, tokenizer=None, embeddings=None, seed: int = 0):
    """A zero-step pack whose language adapter has random (non-identity) weights."""
    adaptable = build_adaptable_model(base, language, tokenizer=tokenizer, embeddings=embeddings)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in adaptable.model.named_parameters():
            if "adapters" in name:
                param.add_(0.05 * torch.randn(param.shape, generator=generator))
    return save_language_pack(adaptable, out, language=language, new_vocabulary=tokenizer is not None)


def reinitialised(base: Path, out: Path, initializer_range: float = 0.2, seed: int = 0) -> Path:
    """`base` with its weights drawn again at a larger scale.

    At the default 0.02 a tiny random encoder's residual stream swamps what attention mixes in:
    every [CLS] state is nearly the same whatever the input, and a frozen encoder + adapter cannot
    learn a sentence-level task in a test's few steps. Trained encoders mix far more.
    """
    import shutil

    from transformers import AutoConfig, AutoModelForMaskedLM

    config = AutoConfig.from_pretrained(base)
    config.initializer_range = initializer_range
    torch.manual_seed(seed)
    AutoModelForMaskedLM.from_config(config).save_pretrained(out)
    for f in base.iterdir():
        if "token" in f.name:
            shutil.copy(f, out / f.name)
    return out


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread; on a busy 2-core machine two threads spin against
    each other (5x slower here). Restored after the module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def task_base_dir(tiny_xlmr_dir, tmp_path_factory) -> Path:
    return reinitialised(tiny_xlmr_dir, tmp_path_factory.mktemp("task-base"))


@pytest.fixture(scope="session")
def en_pack(task_base_dir, tmp_path_factory):
    return make_pack(task_base_dir, tmp_path_factory.mktemp("packs") / "en", "en")


@pytest.fixture(scope="session")
def xx_pack_new_vocab(task_base_dir, tmp_path_factory):
    """A pack with its own vocabulary (tokenizer trained on toy language xx) and embeddings."""
    from transformers import AutoTokenizer

    tok_dir = tiny_xlmr(tmp_path_factory.mktemp("xx-tok"), corpus=tiny_corpus(300, "xx", seed=5))
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    embeddings = 0.02 * torch.randn(len(tokenizer), 32, generator=torch.Generator().manual_seed(1))
    return make_pack(
        task_base_dir,
        tmp_path_factory.mktemp("packs-xx") / "xx",
        "xx",
        tokenizer=tokenizer,
        embeddings=embeddings,
    )


@pytest.fixture(scope="session")
def ner_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ner-data")
    (d / "xx.txt").write_text("\n".join(tiny_corpus(80, "xx", seed=3)) + "\n", encoding="utf-8")
    return {
        "train": write_xtreme(d / "train-en.tsv", ner_records(160, "en", 1)),
        "dev": write_xtreme(d / "dev-en.tsv", ner_records(40, "en", 2)),
        "dev_xx": write_xtreme(d / "dev-xx.tsv", ner_records(30, "xx", 4)),
        "unlabelled_xx": d / "xx.txt",
    }


@pytest.fixture(scope="session")
def trained_ner(en_pack, ner_files, tmp_path_factory):
    """(TaskAdapter, in-memory TaskModel, parameters before training) of a short NER run."""
    from crossling.tasks import train_task

    out = tmp_path_factory.mktemp("task") / "ner-en"
    adapter, model = train_task(
        "ner",
        ner_files["train"],
        out,
        dev=ner_files["dev"],
        pack=en_pack,
        training=FAST,
        progress=False,
        return_model=True,
    )
    return adapter, model
