"""Config validation: unknown and mistyped keys name themselves and what is allowed, all in one error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from training_setup import CONFIG_DIR, tiny_raw_config

import irconstyle
from irconstyle.training import ConfigError, config_from_dict, load_config
from irconstyle.training.config import apply_overrides
from irconstyle.training.schema import parse_config


def _error(raw: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(raw)
    return str(caught.value)


def test_valid_config_becomes_typed_sections():
    config = config_from_dict(tiny_raw_config())
    assert config.train.optimizer.betas == (0.9, 0.999)
    assert config.train.schedule.periods == (3, 3)
    assert config.model.constyle.queue_size == 16
    assert config.to_dict()["train"]["schedule"]["periods"] == [3, 3]


def test_unknown_key_names_it_suggests_and_lists_allowed_keys():
    raw = tiny_raw_config()
    raw["train"]["optimzer"] = {"lr": 1e-3}
    message = _error(raw)
    assert "train.optimzer: unknown key (did you mean 'optimizer'?)" in message
    assert "allowed here: total_iters, constyle_iters, freeze" in message


def test_mistyped_values_name_the_key_and_the_expected_type():
    raw = apply_overrides(tiny_raw_config(), [
        "train.total_iters=many", "train.ema.buffers=1", "train.freeze=never", "train.optimizer.betas=[0.9]",
    ])
    message = _error(raw)
    assert "4 problems" in message
    assert "train.total_iters: expected an integer, got 'many' (str)" in message
    assert "train.ema.buffers: expected true or false, got 1 (int)" in message
    assert "train.freeze: expected one of 'eval', 'published', got 'never' (str)" in message
    assert "train.optimizer.betas: expected a list of 2 values, got 1" in message


def test_yaml_1_1_exponent_numbers_are_accepted():
    config = config_from_dict(apply_overrides(tiny_raw_config(), ["train.optimizer.lr='3e-4'", "val.every=5e3"]))
    assert config.train.optimizer.lr == 3e-4 and config.val.every == 5000


def test_missing_required_keys_and_sections():
    raw = tiny_raw_config()
    del raw["model"]["name"]
    raw["data"] = "folder"
    message = _error(raw)
    assert "model.name: required key is missing" in message
    assert "data: expected a section (mapping), got 'folder' (str)" in message


def test_model_and_dataset_options_are_checked_against_their_signatures():
    raw = apply_overrides(tiny_raw_config(), [
        "model.options.widht=8", "data.train.options.levle=high", "data.train.options.patch_size=16",
    ])
    message = _error(raw)
    assert "model.options.widht: unknown option (did you mean 'width'?); allowed: width" in message
    assert "data.train.options.levle: unknown option (did you mean 'level'?)" in message
    assert "data.train.options.patch_size: set by the trainer from the config" in message


def test_semantic_errors():
    raw = apply_overrides(tiny_raw_config("nafnet"), [
        "train.constyle_iters=10", "train.schedule.eta_mins=[1e-4]", "train.ema.decay=1.0", "model.name=nafnett",
    ])
    message = _error(raw)
    assert "train.schedule: periods, eta_mins and restart_weights need the same length" in message
    assert "train.ema.decay: must be in [0, 1), got 1.0" in message
    assert "model.name: unknown model 'nafnett'; available:" in message

    origin = apply_overrides(tiny_raw_config("nafnet"), ["train.constyle_iters=10"])
    assert "is an Origin model without ConStyle" in _error(origin)


def test_load_config_applies_overrides_and_reports_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(tiny_raw_config()))
    config = load_config(path, ["train.total_iters=7", "model.constyle.enqueue=key"])
    assert config.train.total_iters == 7 and config.model.constyle.enqueue == "key"
    with pytest.raises(ConfigError, match=rf"{path}: train.total_iters: must be > 0"):
        load_config(path, ["train.total_iters=0"])
    with pytest.raises(ConfigError, match="expected key.path=value"):
        load_config(path, ["train.total_iters"])
    with pytest.raises(ConfigError, match="train.total_iters is a value, not a section"):
        load_config(path, ["train.total_iters.x=1"])
    (tmp_path / "broken.yaml").write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "broken.yaml")
    with pytest.raises(ConfigError, match="cannot read the config"):
        load_config(tmp_path / "missing.yaml")


def test_the_schema_reads_a_config_without_torch_the_models_or_the_data_module():
    code = (
        "import json, sys\n"
        "from irconstyle.training import schema\n"
        f"schema.parse_config(schema.read_config({str(CONFIG_DIR / 'smoke.yaml')!r}))\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    source = str(Path(irconstyle.__file__).parents[1])  # this checkout's package, whatever is installed
    environment = {**os.environ, "PYTHONPATH": source}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment)
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    assert "torch" not in loaded
    assert "irconstyle.models" not in loaded and "irconstyle.training.data" not in loaded
    assert {name for name in loaded if name.startswith("irconstyle")} == {
        "irconstyle", "irconstyle._lazy", "irconstyle.training", "irconstyle.training.schema",
    }


def test_the_schema_checks_shapes_and_the_loader_adds_the_registries():
    raw = apply_overrides(tiny_raw_config(), ["model.name=nafnett", "data.train.dataset=folders"])
    assert parse_config(raw).model.name == "nafnett"  # the schema does not know which models exist
    message = _error(raw)
    assert "2 problems" in message
    assert "model.name: unknown model 'nafnett'; available:" in message
    assert "data.train.dataset: unknown dataset 'folders'; available:" in message


def _write(path: Path, settings: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def test_bases_merge_in_order_under_the_including_file(tmp_path):
    raw = tiny_raw_config()
    recipe = {key: raw[key] for key in ("seed", "threads", "data", "train", "checkpoint", "log")}
    # a base of a base, found relative to the file that names it, not to the working directory
    _write(tmp_path / "_base" / "common.yaml", {**recipe, "base": "../shared/log.yaml"})
    _write(tmp_path / "shared" / "log.yaml", {"log": {"every": 1, "tensorboard": True}, "val": {"samples": 1}})
    _write(tmp_path / "_base" / "slow.yaml", {"train": {"total_iters": 9, "ema": {"buffers": False}}})
    child = _write(tmp_path / "run.yaml", {
        "base": ["_base/common.yaml", "_base/slow.yaml"],
        "name": "child", "model": raw["model"],
        "train": {"schedule": {"periods": [5, 4]}},
    })
    config = load_config(child, ["train.ema.decay=0.25"])
    assert config.name == "child" and config.model.options == raw["model"]["options"]
    assert config.log.every == 2 and config.log.tensorboard is False  # the including file wins over its base
    assert config.val.samples == 1  # the base's base
    assert config.train.total_iters == 9  # a later base wins over an earlier one
    assert config.train.ema.buffers is False and config.train.ema.decay == 0.25  # mappings merge key by key
    assert config.train.schedule.periods == (5, 4)  # lists are replaced, not merged
    assert config.train.schedule.eta_mins == tuple(raw["train"]["schedule"]["eta_mins"])
    assert config.data.train.options == raw["data"]["train"]["options"]
    assert "base" not in config.to_dict()


def test_base_errors_are_one_line_naming_the_file(tmp_path):
    child = _write(tmp_path / "run.yaml", {"base": "_base/missing.yaml", "name": "x"})
    with pytest.raises(ConfigError) as caught:
        load_config(child)
    missing = tmp_path / "_base" / "missing.yaml"
    assert str(caught.value) == f"{child}: base '_base/missing.yaml': no such file {missing}"

    first = _write(tmp_path / "a.yaml", {"base": "b.yaml"})
    second = _write(tmp_path / "b.yaml", {"base": ["a.yaml"]})
    with pytest.raises(ConfigError) as caught:
        load_config(first)
    message = str(caught.value)
    assert message == f"{second}: base 'a.yaml' is a cycle ({first} -> {second} -> {first})" and "\n" not in message

    _write(tmp_path / "self.yaml", {"base": "self.yaml"})
    with pytest.raises(ConfigError, match=r"self\.yaml: base 'self\.yaml' is a cycle"):
        load_config(tmp_path / "self.yaml")
    _write(tmp_path / "typed.yaml", {"base": {"file": "a.yaml"}})
    with pytest.raises(ConfigError, match=r"typed\.yaml: base: expected a config file or a list of them, got"):
        load_config(tmp_path / "typed.yaml")
    (tmp_path / "broken.yaml").write_text("model: [unclosed")
    _write(tmp_path / "on_broken.yaml", {"base": "broken.yaml"})
    with pytest.raises(ConfigError, match=rf"{tmp_path / 'broken.yaml'}: not valid YAML"):
        load_config(tmp_path / "on_broken.yaml")


def test_config_show_prints_the_resolved_config_a_run_stores(tmp_path, capsys):
    from irconstyle.cli import main
    from irconstyle.training import Trainer

    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny_raw_config()))
    override = {"base": "base.yaml", "train": {"total_iters": 2, "schedule": {"periods": [1, 1]}}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(override))
    assert main(["config", "show", str(tmp_path / "run.yaml"), "--set", "seed=5", "--set", "train.ema.decay=0.25"]) == 0
    shown = capsys.readouterr().out
    resolved = yaml.safe_load(shown)
    assert "base" not in resolved
    assert (resolved["train"]["total_iters"], resolved["seed"], resolved["train"]["ema"]["decay"]) == (2, 5, 0.25)
    assert resolved["train"]["schedule"]["restart_weights"] == [1, 1]  # merged into the base's section
    assert resolved["model"] == config_from_dict(tiny_raw_config()).to_dict()["model"]  # from the base
    assert resolved["train"]["optimizer"]["betas"] == [0.9, 0.999]  # a default filled in
    config = load_config(tmp_path / "run.yaml", ["seed=5", "train.ema.decay=0.25"])
    Trainer(config, output_dir=tmp_path / "out", progress=False).run()
    assert (tmp_path / "out" / "config.yaml").read_text() == shown


def test_config_show_of_a_bad_config_is_a_one_line_error(tmp_path, capsys):
    from irconstyle.cli import main

    (tmp_path / "run.yaml").write_text(yaml.safe_dump(tiny_raw_config()))
    assert main(["config", "show", str(tmp_path / "run.yaml"), "--set", "train.total_iter=6"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(
        f"irconstyle config show: {tmp_path / 'run.yaml'}: train.total_iter: unknown key (did you mean 'total_iters'?)"
    )
    assert captured.err.count("\n") == 1
    assert main(["config", "show", str(tmp_path / "missing.yaml")]) == 2
    missing = tmp_path / "missing.yaml"
    expected = f"irconstyle config show: {missing}: cannot read the config (No such file or directory)\n"
    assert capsys.readouterr().err == expected
