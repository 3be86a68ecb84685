"""The pieces crossling's trainers and training commands share (crossling.training_utils and
crossling.commands._training), tested without a model."""

import argparse
from types import SimpleNamespace

import pytest
import torch

from crossling.commands._training import TRAINING_OPTIONS, add_training_arguments, training_config
from crossling.config import TrainingConfig
from crossling.distill.config import distill_training_config
from crossling.errors import CrosslingError
from crossling.training_utils import (
    LossPartsLoggingMixin,
    adamw,
    fused_adamw_available,
    last_checkpoint,
    training_arguments,
)


class _FakeTrainer:
    """Stands in for transformers.Trainer: just what the mixin touches."""

    def __init__(self, output_dir):
        self.args = SimpleNamespace(output_dir=str(output_dir))
        self.state = SimpleNamespace(global_step=3)
        self.logged = []

    def log(self, logs, start_time=None):
        self.logged.append(dict(logs))


class _Logging(LossPartsLoggingMixin, _FakeTrainer):
    pass


class _Quiet(LossPartsLoggingMixin, _FakeTrainer):
    log_tokens_per_second = False
    divergence_message = "stopped at {step}: {what} ({last})"
    nonfinite_loss_message = "the loss is {loss}"


def test_log_lines_carry_the_mean_of_each_part_since_the_last_one(tmp_path):
    trainer = _Logging(tmp_path)
    trainer.record_loss_parts({"mlm": 1.0, "kl": 0.5})
    trainer.record_loss_parts({"mlm": 2.0})
    trainer.count_tokens(torch.ones(2, 5))
    trainer.log({"loss": 1.5})
    trainer.log({"eval_f1": 0.9})  # not a training line: left alone
    trainer.log({"loss": 1.0})  # nothing recorded since the last line
    first, evaluation, third = trainer.logged
    assert first["mlm"] == 1.5 and first["kl"] == 0.5 and first["tokens_per_s"] > 0
    assert evaluation == {"eval_f1": 0.9}
    assert "mlm" not in third and "tokens_per_s" in third


def test_tokens_per_second_can_be_left_out(tmp_path):
    trainer = _Quiet(tmp_path)
    trainer.record_loss_parts({"task_loss": 0.25})
    trainer.log({"loss": 0.25})
    assert trainer.logged == [{"loss": 0.25, "task_loss": 0.25}]


def test_a_non_finite_loss_names_the_last_good_checkpoint(tmp_path):
    trainer = _Logging(tmp_path)
    trainer.check_finite_loss(torch.tensor(1.0))  # finite: nothing happens
    with pytest.raises(CrosslingError, match=r"^training diverged \(loss nan\) at step 3; .*none yet"):
        trainer.check_finite_loss(torch.tensor(float("nan")))
    (tmp_path / "checkpoint-2").mkdir()
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text("{}")
    with pytest.raises(CrosslingError, match=r"^stopped at 3: the loss is inf \(.*checkpoint-2\)$"):
        _Quiet(tmp_path).check_finite_loss(torch.tensor(float("inf")))


def test_training_arguments_follow_the_config_and_take_overrides(tmp_path):
    training = TrainingConfig.load("smoke", save_steps=7, seed=5)
    args = training_arguments(training, tmp_path / "checkpoints", progress=False, optim="adamw_torch")
    assert args.output_dir == str(tmp_path / "checkpoints")
    assert (args.max_steps, args.save_steps, args.logging_steps) == (20, 7, 7)
    assert (args.seed, args.data_seed, args.disable_tqdm, args.save_total_limit) == (5, 5, True, 2)
    assert args.optim == "adamw_torch"


# ---------------------------------------------------------------------- the commands' training options
def _parser(**kwargs) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_training_arguments(parser, **kwargs)
    return parser


def test_training_config_from_the_options():
    args = _parser().parse_args(["--budget", "smoke", "--lr", "3e-5", "--epochs", "2"])
    assert training_config(args) == TrainingConfig.load("smoke", learning_rate=3e-5, epochs=2.0, max_steps=-1)
    args = _parser().parse_args(["--epochs", "2", "--max-steps", "9"])
    assert training_config(args).max_steps == 9
    distill = training_config(_parser().parse_args([]), load=distill_training_config)
    assert distill == distill_training_config()


def test_a_command_can_take_a_subset_with_its_own_wording():
    parser = _parser(options=("budget", "seed"), help_texts={"seed": "seed of everything"})
    assert "seed of everything" in parser.format_help() and "--epochs" not in parser.format_help()
    assert training_config(parser.parse_args(["--seed", "3"])) == TrainingConfig.load("cpu", seed=3)
    with pytest.raises(ValueError, match="unknown training option"):
        _parser(options=(*TRAINING_OPTIONS, "warmup"))


def test_adamw_is_fused_where_torch_has_it_and_updates_like_the_reference(tmp_path):
    args = training_arguments(TrainingConfig(), tmp_path)
    assert args.optim == ("adamw_torch_fused" if fused_adamw_available() else "adamw_torch")
    torch.manual_seed(0)
    start, grad = torch.randn(50, 8), torch.randn(50, 8)
    weights = []
    for make in (adamw, torch.optim.AdamW):
        w = torch.nn.Parameter(start.clone())
        opt = make([w], lr=0.1, weight_decay=0.01)
        for _ in range(3):
            w.grad = grad.clone()
            opt.step()
        weights.append(w.detach())
        if make is adamw:
            assert opt.param_groups[0]["fused"] is (True if fused_adamw_available() else None)
    assert not torch.equal(weights[0], start)
    assert torch.allclose(weights[0], weights[1], atol=1e-6)
    # torch >= 2.4 (what crossling pins in CI) has the fused CPU kernel; asking for foreach wins
    assert fused_adamw_available() == (tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 4))
    assert adamw([torch.nn.Parameter(start.clone())], foreach=True).param_groups[0]["foreach"] is True


def test_last_checkpoint_skips_a_checkpoint_killed_while_saving(tmp_path):
    assert last_checkpoint(tmp_path / "missing") is None
    for step, state in ((10, "{}"), (20, "{}"), (100, None), (30, '{"trunc')):
        path = tmp_path / f"checkpoint-{step}"
        path.mkdir()
        (path / "model.safetensors").write_bytes(b"x")
        if state is not None:
            (path / "trainer_state.json").write_text(state, encoding="utf-8")
    (tmp_path / "checkpoint-x").mkdir()
    # 100: weights written, killed before trainer_state.json; 30: killed while writing it
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-20")
