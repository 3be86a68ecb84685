"""Parallel runs: several task adapters in one pass, Stack(lang, Parallel(a, b)) with heads (what the
harmony issue builds on), and data-parallel training under torchrun."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from adapters.composition import Parallel, Stack
from test_tasks_support import ner_records

from crossling.artifacts import TaskAdapter
from crossling.tasks import attach_task_adapter, build_pack_model, collate, encode_records, load_task_model
from crossling.tasks.model import add_head, task_adapter_config

# shared fixtures (tiny packs, toy data, a trained NER adapter)
pytest_plugins = ["test_tasks_support"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _save_random_task_adapter(pack, out, name, labels, seed):
    """A task adapter + head with random (non-zero) weights, saved as a TaskAdapter."""
    torch.manual_seed(seed)
    packed = build_pack_model(pack)
    model = packed.model
    model.add_adapter(name, config=task_adapter_config(16))
    add_head(model, name, "ner", labels)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if f".{name}." in n:
                p.add_(0.1 * torch.randn_like(p))
    adapter = TaskAdapter(
        task="ner",
        labels=labels,
        source_language=name,
        base=packed.base_identity,
        language_pack=str(pack.path),
        config={"mode": "adapter", "adapter_name": name},
    )
    adapter.save_pretrained(
        out, write_adapter=lambda d: model.save_adapter(str(d), name, with_head=True, use_safetensors=True)
    )
    return adapter


def test_stack_parallel_heads_equal_each_adapter_alone(en_pack, tmp_path):
    labels = ["O", "B-LOC", "B-PER"]
    first = _save_random_task_adapter(en_pack, tmp_path / "a", "src_a", labels, 1)
    second = _save_random_task_adapter(en_pack, tmp_path / "b", "src_b", labels, 2)

    packed = build_pack_model(en_pack)
    names = [attach_task_adapter(packed.model, first, "t0"), attach_task_adapter(packed.model, second, "t1")]
    packed.model.set_active_adapters(Stack(packed.language, Parallel(*names)))
    packed.model.active_head = Parallel(*names)
    packed.model.eval()
    records = [{"tokens": "the cat sees Amina in Nairobi .".split()}, {"tokens": "mother reads".split()}]
    batch = collate(
        encode_records("ner", packed.tokenizer, records, None, 64).features, packed.tokenizer.pad_token_id
    )
    with torch.no_grad():
        outputs = packed.model(**batch)
    assert len(outputs) == 2
    for output, adapter in zip(outputs, (first, second), strict=True):
        alone = load_task_model(adapter.path, en_pack)
        expected = alone.logits(batch)
        assert output.logits.shape == expected.shape
        assert torch.allclose(output.logits, expected, atol=1e-5)
    assert not torch.allclose(outputs[0].logits, outputs[1].logits)


def test_torchrun_two_processes_train_one_adapter(en_pack, ner_files, tmp_path):
    """`torchrun` works as for `adapt`: gloo data parallelism on CPU, Keung's extra optimisers
    included, one TaskAdapter written by the main process, one report printed."""
    out = tmp_path / "ner-ddp"
    args = ["train-task", "--task", "ner", "--train", str(ner_files["train"]), "--dev", str(ner_files["dev"])]
    args += ["--pack", str(en_pack.path), "--out", str(out), "--budget", "smoke", "--max-steps", "4"]
    args += ["--save-steps", "2", "--no-progress", "--adversarial", "keung"]
    args += ["--adv-unlabelled", f"xx={ner_files['unlabelled_xx']}"]
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = subprocess.run(
        [*torchrun, "-m", "crossling", *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    meta = json.loads((out / "crossling.json").read_text())
    assert meta["config"]["processes"] == 2 and meta["config"]["summary"]["steps"] == 4
    assert (
        out.parent / "ner-ddp.work" / "checkpoints" / "checkpoint-4" / "adversarial_optimizers.pt"
    ).is_file()
    assert result.stdout.count("wrote ") == 1  # only the main process reports
    model = load_task_model(out, en_pack)
    assert len(model.predict(ner_records(3, "en", 9)).labels) == 3
