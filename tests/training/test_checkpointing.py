"""Checkpoint files: atomic writes, pruning, finding the newest, RNG capture, safe loading."""

import random

import numpy as np
import pytest
import torch

from irconstyle.training import checkpointing
from irconstyle.training.checkpointing import TrainingCheckpointError


def _state(iteration: int) -> dict:
    return {
        "format": checkpointing.CHECKPOINT_FORMAT,
        "version": checkpointing.CHECKPOINT_VERSION,
        "iteration": iteration,
        "weights": torch.arange(4.0),
    }


def test_atomic_save_leaves_no_temporary_and_round_trips(tmp_path):
    path = tmp_path / checkpointing.periodic_name(7)
    checkpointing.atomic_save(_state(7), path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    loaded = checkpointing.load_training_checkpoint(path)
    assert loaded["iteration"] == 7
    torch.testing.assert_close(loaded["weights"], torch.arange(4.0))


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "best.ckpt"
    checkpointing.atomic_save(_state(1), path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        checkpointing.atomic_save({"bad": Unpicklable()}, path)
    assert checkpointing.load_training_checkpoint(path)["iteration"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["best.ckpt"]


def test_latest_and_pruning_keep_the_newest_and_best(tmp_path):
    for iteration in (5, 10, 15, 20):
        checkpointing.atomic_save(_state(iteration), tmp_path / checkpointing.periodic_name(iteration))
    checkpointing.atomic_save(_state(10), tmp_path / checkpointing.BEST_NAME)
    (tmp_path / ".iter_00000025.ckpt.abc.tmp").write_bytes(b"torn")
    assert checkpointing.latest_checkpoint(tmp_path).name == checkpointing.periodic_name(20)
    checkpointing.prune_checkpoints(tmp_path, keep_last=2)
    checkpointing.remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "best.ckpt", checkpointing.periodic_name(15), checkpointing.periodic_name(20)
    ]


def test_latest_is_none_without_checkpoints(tmp_path):
    assert checkpointing.latest_checkpoint(tmp_path / "missing") is None


def test_rng_state_round_trip_restores_every_generator(tmp_path):
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    np.random.standard_normal()  # leaves a cached Gaussian in NumPy's state
    state = checkpointing.capture_rng_state()
    path = tmp_path / "rng.ckpt"
    checkpointing.atomic_save({**_state(0), "rng": state}, path)
    expected = (random.random(), np.random.standard_normal(3).tolist(), torch.rand(3))
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    checkpointing.restore_rng_state(checkpointing.load_training_checkpoint(path)["rng"])
    assert random.random() == expected[0]
    assert np.random.standard_normal(3).tolist() == expected[1]
    assert torch.equal(torch.rand(3), expected[2])


def test_loading_rejects_missing_foreign_and_corrupt_files(tmp_path):
    with pytest.raises(TrainingCheckpointError, match="no such checkpoint"):
        checkpointing.load_training_checkpoint(tmp_path / "nope.ckpt")
    foreign = tmp_path / "weights.pth"
    torch.save({"params": {"w": torch.zeros(1)}}, foreign)
    with pytest.raises(TrainingCheckpointError, match="not an irconstyle training checkpoint"):
        checkpointing.load_training_checkpoint(foreign)
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"\x00garbage")
    with pytest.raises(TrainingCheckpointError, match="not a readable training checkpoint"):
        checkpointing.load_training_checkpoint(corrupt)
