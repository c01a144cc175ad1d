"""`irconstyle train` as a user runs it: SIGKILL then --resume auto, Ctrl-C, errors, the smoke config."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from training_setup import REPO, tiny_config, tiny_raw_config

from irconstyle.cli import main
from irconstyle.training import Trainer, load_config
from irconstyle.training.checkpointing import latest_checkpoint, load_training_checkpoint, periodic_checkpoints

OVERRIDES = {"train.total_iters": 12, "train.constyle_iters": 5, "train.mixup.enabled": True}


def _train_command(config: Path, output: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "irconstyle", "train", str(config), "--output", str(output), "--quiet", *extra]


def _wait_for_checkpoint_after(process: subprocess.Popen, folder: Path, iteration: int) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = periodic_checkpoints(folder / "checkpoints")
        if found and found[-1][0] > iteration:
            return found[-1][0]
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared in time")


def test_sigkill_then_ctrl_c_then_resume_ends_with_identical_weights(tmp_path):
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny_raw_config(**OVERRIDES)))
    output = tmp_path / "run"

    killed = subprocess.Popen(_train_command(config_path, output), cwd=REPO, stderr=subprocess.PIPE)
    _wait_for_checkpoint_after(killed, output, 0)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL  # killed mid-run, not after finishing
    resumed_from = latest_checkpoint(output / "checkpoints")

    interrupted = subprocess.Popen(
        _train_command(config_path, output, "--resume", "auto"), cwd=REPO, stderr=subprocess.PIPE, text=True
    )
    _wait_for_checkpoint_after(interrupted, output, int(resumed_from.stem.split("_")[1]))
    interrupted.send_signal(signal.SIGINT)
    _, stderr = interrupted.communicate(timeout=120)
    assert interrupted.returncode == 130, stderr
    assert "Traceback" not in stderr
    log = (output / "train.log").read_text()
    assert "SIGINT received" in log and "stopped by SIGINT" in log
    stopped_at = load_training_checkpoint(latest_checkpoint(output / "checkpoints"))["iteration"]
    assert stopped_at < OVERRIDES["train.total_iters"]

    finished = subprocess.run(
        _train_command(config_path, output, "--resume", "auto"), cwd=REPO, capture_output=True, text=True
    )
    assert finished.returncode == 0, finished.stderr

    reference = Trainer(tiny_config(**OVERRIDES), output_dir=tmp_path / "reference", progress=False).run()
    expected = load_training_checkpoint(reference.last_checkpoint)
    actual = load_training_checkpoint(latest_checkpoint(output / "checkpoints"))
    assert actual["iteration"] == expected["iteration"] == OVERRIDES["train.total_iters"]
    for part in ("model", "ema"):
        assert [k for k in expected[part] if not torch.equal(expected[part][k], actual[part][k])] == []


def test_config_errors_are_one_message_and_exit_code_2(tmp_path, capsys):
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny_raw_config()))
    code = main(["train", str(config_path), "--output", str(tmp_path / "run"), "--set", "train.lr=1e-3"])
    assert code == 2
    error = capsys.readouterr().err
    assert "config error" in error and "train.lr: unknown key" in error and "Traceback" not in error
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_smoke_config_runs_under_a_minute(tmp_path):
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "irconstyle", "train", "configs/smoke.yaml", "--output", str(tmp_path), "--quiet"],
        cwd=REPO, capture_output=True, text=True, env={**os.environ},
    )
    assert completed.returncode == 0, completed.stderr
    assert time.monotonic() - started < 60
    assert (tmp_path / "model_best.safetensors").is_file() and (tmp_path / "model_final.safetensors").is_file()


def test_a_run_stores_its_config_resolved_and_resumes_from_it_after_the_base_changed(tmp_path, capsys):
    raw = tiny_raw_config(**{"train.total_iters": 2})
    base = tmp_path / "_base" / "recipe.yaml"
    base.parent.mkdir()
    base.write_text(yaml.safe_dump({key: value for key, value in raw.items() if key not in ("name", "model")}))
    config_path = tmp_path / "child.yaml"
    config_path.write_text(yaml.safe_dump({"base": "_base/recipe.yaml", "name": raw["name"], "model": raw["model"]}))
    output = tmp_path / "run"
    assert main(["train", str(config_path), "--output", str(output), "--quiet"]) == 0

    resolved = load_config(config_path).to_dict()
    stored = yaml.safe_load((output / "config.yaml").read_text())
    assert stored == resolved and "base" not in stored
    assert load_training_checkpoint(latest_checkpoint(output / "checkpoints"))["config"] == resolved

    # The base changes later: the run's own copy still continues it, the changed recipe is refused.
    base.write_text(base.read_text().replace("decay: 0.5", "decay: 0.75"))
    more = ["--set", "train.total_iters=4", "--resume", "auto", "--quiet", "--output", str(output)]
    assert main(["train", str(config_path), *more]) == 1
    assert "train.ema.decay: checkpoint 0.5, now 0.75" in capsys.readouterr().err
    assert main(["train", str(output / "config.yaml"), *more]) == 0
    assert load_training_checkpoint(latest_checkpoint(output / "checkpoints"))["iteration"] == 4
