import pytest

from crossling.config import (
    HarmonyConfig,
    LanguageAdapterConfig,
    TaskAdapterConfig,
    TrainingConfig,
    VocabSearchConfig,
)
from crossling.errors import ConfigError

ALL = [VocabSearchConfig, LanguageAdapterConfig, TaskAdapterConfig, HarmonyConfig, TrainingConfig]


@pytest.mark.parametrize("cls", ALL)
def test_yaml_and_dict_round_trip(cls):
    cfg = cls()
    assert cls.from_yaml(cfg.to_yaml()) == cfg
    assert cls.load(cfg.to_dict()) == cfg


@pytest.mark.parametrize("cls", [c for c in ALL if c.PRESETS])
def test_every_preset_builds_and_round_trips(cls):
    for name in cls.PRESETS:
        cfg = cls.load(name)
        assert cls.from_yaml(cfg.to_yaml()) == cfg


def test_preset_with_overrides_and_yaml_file(tmp_path):
    cfg = LanguageAdapterConfig.load("unibridge", kl_weight=0.0, leave_out=[10, 11])
    assert cfg.kl_weight == 0.0 and cfg.leave_out == (10, 11)
    assert cfg.to_dict()["leave_out"] == [10, 11]
    path = tmp_path / "adapter.yaml"
    path.write_text(cfg.to_yaml(), encoding="utf-8")
    assert LanguageAdapterConfig.load(path) == cfg
    assert LanguageAdapterConfig.load(str(path), reduction_factor=4).reduction_factor == 4


def test_budgets_differ_in_size():
    smoke, cpu, paper = (TrainingConfig.load(b) for b in ("smoke", "cpu", "paper"))
    assert smoke.max_steps < cpu.max_steps < paper.max_steps


def test_configs_are_frozen():
    cfg = TrainingConfig()
    with pytest.raises(AttributeError):
        cfg.learning_rate = 1.0  # type: ignore[misc]
    assert cfg.replace(learning_rate=1.0).learning_rate == 1.0 and cfg.learning_rate == 1e-4


def test_int_is_accepted_where_float_expected():
    assert LanguageAdapterConfig(kl_weight=1).kl_weight == 1.0
    assert isinstance(LanguageAdapterConfig(kl_weight=1).kl_weight, float)


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (LanguageAdapterConfig, {"kl_wieght": 1.0}, "unknown option(s) kl_wieght"),
        (LanguageAdapterConfig, {"reduction_factor": "2"}, "reduction_factor: expected an integer"),
        (LanguageAdapterConfig, {"invertible": 1}, "invertible: expected true/false"),
        (LanguageAdapterConfig, {"mlm_probability": 1.5}, "mlm_probability: 1.5 is outside [0.0, 1.0]"),
        (LanguageAdapterConfig, {"leave_out": 3}, "leave_out: expected a list"),
        (LanguageAdapterConfig, {"leave_out": [1, "x"]}, "leave_out[1]: expected an integer"),
        (TaskAdapterConfig, {"task": "parsing"}, "task: 'parsing' is not one of"),
        (VocabSearchConfig, {"start": 9000, "max_size": 8000}, "start (9000) > max_size (8000)"),
        (VocabSearchConfig, {"fixed_size": "big"}, "fixed_size: 'big' is none of"),
        (HarmonyConfig, {"temperature": 0.0}, "temperature: 0.0 is outside"),
    ],
)
def test_validation_messages_name_the_field(cls, kwargs, message):
    with pytest.raises(ConfigError) as err:
        cls.from_dict(kwargs)
    assert message in str(err.value)


def test_unknown_preset_lists_presets():
    with pytest.raises(ConfigError, match="unknown preset 'fast'.*smoke"):
        TrainingConfig.load("fast")


def test_missing_yaml_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        TrainingConfig.load(tmp_path / "nope.yaml")


def test_yaml_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a mapping"):
        TrainingConfig.load(path)


def test_fields_added_later_drop_out_of_signatures_only_at_their_default():
    from crossling.config import without_new_defaults

    old = {k: v for k, v in TrainingConfig().to_dict().items() if k != "precision"}  # written before
    assert without_new_defaults({"training": TrainingConfig().to_dict(), "n": [{"precision": "fp32"}]}) == {
        "training": old,
        "n": [{}],
    }
    assert without_new_defaults(TrainingConfig(precision="bf16").to_dict())["precision"] == "bf16"
