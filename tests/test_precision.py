"""TrainingConfig.precision: bf16 reaches every training loop's matrix products (Trainer's and crossling's
own), while weights and losses stay fp32; fp32 stays fp32."""

from __future__ import annotations

import contextlib

import pytest
import torch
from test_tasks_support import FAST as TASK_FAST

from crossling.config import LanguageAdapterConfig, TrainingConfig
from crossling.language import build_adaptable_model, train_language_adapter
from crossling.tasks import train_task
from crossling.testing import tiny_corpus

pytest_plugins = ["test_tasks_support"]  # tiny packs and toy NER data
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@contextlib.contextmanager
def linear_output_dtypes():
    """Record the output dtype of every nn.Linear call while the block runs."""
    seen: set[torch.dtype] = set()

    def hook(module, args, output):
        seen.add(output.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda m, a, o: hook(m, a, o) if isinstance(m, torch.nn.Linear) else None
    )
    try:
        yield seen
    finally:
        handle.remove()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_language_adapter_training_runs_matrix_products_in_the_chosen_precision(
    tiny_xlmr_dir, tmp_path, precision
):
    adaptable = build_adaptable_model(tiny_xlmr_dir, "xx", LanguageAdapterConfig())
    training = TrainingConfig(
        max_steps=3, batch_size=8, learning_rate=5e-3, save_steps=3, precision=precision
    )
    with linear_output_dtypes() as seen:
        summary = train_language_adapter(
            adaptable, tiny_corpus(60, "xx"), LanguageAdapterConfig(), training, tmp_path, progress=False
        )
    expected = {"fp32": {torch.float32}, "bf16": {torch.bfloat16}}[precision]
    assert expected <= seen and (precision == "bf16" or seen == {torch.float32}), seen
    assert torch.isfinite(torch.tensor(summary["train_loss"]))
    # the weights (and so the saved pack) stay fp32
    assert {p.dtype for p in adaptable.model.parameters()} == {torch.float32}


def test_losses_are_fp32_under_bf16_autocast(tiny_xlmr_dir):
    from transformers import DataCollatorForLanguageModeling

    from crossling.language import freeze_for_language_training, mlm_kl_loss

    adaptable = build_adaptable_model(tiny_xlmr_dir, "xx", LanguageAdapterConfig())
    freeze_for_language_training(adaptable, LanguageAdapterConfig())
    collator = DataCollatorForLanguageModeling(adaptable.tokenizer, mlm_probability=0.3)
    torch.manual_seed(0)
    batch = collator([{"input_ids": ids} for ids in adaptable.tokenizer(tiny_corpus(8, "xx"))["input_ids"]])
    with linear_output_dtypes() as seen, torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _, parts = mlm_kl_loss(adaptable.model.train(), batch, 1.0, 1.0)
    assert torch.bfloat16 in seen and loss.dtype == torch.float32 and torch.isfinite(loss)
    assert set(parts) >= {"mlm", "kl"}


def test_bf16_stays_inside_its_run(tiny_xlmr_dir, tmp_path):
    """A bf16 run leaves no trace: the model evaluates in fp32 afterwards, and a later fp32 run of the
    same process is fp32 (transformers keeps bf16 in ACCELERATE_MIXED_PRECISION otherwise)."""
    lines = tiny_corpus(60, "xx")
    runs = {}
    for precision in ("bf16", "fp32"):
        adaptable = build_adaptable_model(tiny_xlmr_dir, "xx", LanguageAdapterConfig())
        training = TrainingConfig(max_steps=2, batch_size=8, save_steps=2, precision=precision)
        with linear_output_dtypes() as seen:
            train_language_adapter(
                adaptable, lines, LanguageAdapterConfig(), training, tmp_path / precision, progress=False
            )
        batch = adaptable.tokenizer(lines[:4], return_tensors="pt", padding=True)
        with linear_output_dtypes() as after, torch.no_grad():
            adaptable.model(**batch)
        runs[precision] = (seen, after)
    assert torch.bfloat16 in runs["bf16"][0] and runs["bf16"][1] == {torch.float32}
    assert runs["fp32"][0] == {torch.float32} and runs["fp32"][1] == {torch.float32}


@pytest.mark.parametrize("adversarial", ["none", "keung"])
def test_task_training_autocasts_trainer_and_keung_steps(
    en_pack, ner_files, tmp_path, adversarial, monkeypatch
):
    import crossling.tasks.training as task_training

    keung_dtypes: set[torch.dtype] = set()
    original = task_training.keung_updates

    def recording(*args, **kwargs):  # Keung's discriminator/generator steps run outside Trainer
        with linear_output_dtypes() as seen_here:
            out = original(*args, **kwargs)
        keung_dtypes.update(seen_here)
        return out

    monkeypatch.setattr(task_training, "keung_updates", recording)
    with linear_output_dtypes() as seen:
        adapter, model = train_task(
            "ner",
            ner_files["train"],
            tmp_path / "bf16",
            pack=en_pack,
            config={"adversarial": adversarial},
            unlabelled={"xx": ner_files["unlabelled_xx"]} if adversarial == "keung" else None,
            training=TASK_FAST.replace(max_steps=4, precision="bf16"),
            progress=False,
            return_model=True,
        )
    assert torch.bfloat16 in seen
    assert keung_dtypes == ({torch.bfloat16, torch.float32} if adversarial == "keung" else set())
    assert {p.dtype for p in model.model.parameters()} == {torch.float32}
    assert adapter.config["training"]["precision"] == "bf16"
    losses = [h["task_loss"] for h in adapter.config["summary"]["history"]]
    assert losses and all(torch.isfinite(torch.tensor(losses)))


def test_cli_precision_option_reaches_the_config():
    import argparse

    from crossling.commands._training import add_training_arguments, training_config

    parser = argparse.ArgumentParser()
    add_training_arguments(parser)
    assert training_config(parser.parse_args(["--precision", "bf16"])).precision == "bf16"
    assert training_config(parser.parse_args([])).precision == "fp32"
    with pytest.raises(SystemExit):
        parser.parse_args(["--precision", "fp16"])


@pytest.mark.parametrize(("cpu_native", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_precision_is_resolved_when_the_config_is_built(monkeypatch, cpu_native, expected):
    """`auto` never reaches a trainer or a saved config: they see what this machine runs natively."""
    import argparse

    import crossling.training_utils
    from crossling.commands._training import add_training_arguments, training_config

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(crossling.training_utils, "_bf16_is_native", lambda: cpu_native)
    config = TrainingConfig(precision="auto")
    assert config.precision == expected
    assert TrainingConfig.load(config.to_dict()).precision == expected
    assert TrainingConfig.load("cpu", precision="auto").precision == expected
    parser = argparse.ArgumentParser()
    add_training_arguments(parser)
    assert training_config(parser.parse_args(["--precision", "auto"])).precision == expected


def test_auto_precision_on_a_gpu_follows_its_bf16_support(monkeypatch):
    import crossling.training_utils

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(crossling.training_utils, "_bf16_is_native", lambda: False)
    for supported, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True, s=supported: s)
        assert TrainingConfig(precision="auto").precision == expected
