"""Training checkpoints: atomic writes, the last K kept plus the best, every RNG captured and restored.

A checkpoint is one file, ``iter_00001234.ckpt`` (or ``best.ckpt``), written with :func:`torch.save` to a
temporary file in the same folder, flushed to disk and renamed over the target, so a crash (even SIGKILL)
leaves either the previous file or the new one, never a torn one. It is read back with
``torch.load(weights_only=True)``: tensors, numbers, strings and containers only, no pickled code.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from irconstyle.atomic import atomic_write
from irconstyle.models.checkpoint import load_checkpoint, load_checkpoint_into_deeper
from irconstyle.models.registry import BuildConfig
from irconstyle.zoo import describe, save

CHECKPOINT_FORMAT = "irconstyle-training"
CHECKPOINT_VERSION = 1
BEST_NAME = "best.ckpt"
_PERIODIC = re.compile(r"^iter_(\d+)\.ckpt$")


class TrainingCheckpointError(ValueError):
    """A training checkpoint is missing, unreadable or does not fit the run."""


def periodic_name(iteration: int) -> str:
    return f"iter_{iteration:08d}.ckpt"


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` through a temporary file, fsync and rename (POSIX-atomic)."""
    with atomic_write(path) as temporary:
        torch.save(obj, temporary)


def periodic_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """The ``iter_*.ckpt`` files in ``directory`` as (iteration, path), oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _PERIODIC.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(directory: Path) -> Path | None:
    found = periodic_checkpoints(directory)
    return found[-1][1] if found else None


def remove_stale_temporaries(directory: Path) -> None:
    """Delete temporary files left by a write that was killed half-way."""
    if directory.is_dir():
        for path in directory.glob(".*.tmp"):
            path.unlink(missing_ok=True)


def prune_checkpoints(directory: Path, keep_last: int) -> None:
    """Keep the ``keep_last`` newest periodic checkpoints (``best.ckpt`` is never touched)."""
    found = periodic_checkpoints(directory)
    for _, path in found[: max(len(found) - keep_last, 0)]:
        path.unlink(missing_ok=True)


def load_training_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise TrainingCheckpointError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types here; all mean "unusable file"
        raise TrainingCheckpointError(f"{path}: not a readable training checkpoint ({error})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise TrainingCheckpointError(
            f"{path}: not an irconstyle training checkpoint (for model weights use irconstyle.load_checkpoint)"
        )
    if state.get("version") != CHECKPOINT_VERSION:
        raise TrainingCheckpointError(
            f"{path}: checkpoint version {state.get('version')} is not supported (expected {CHECKPOINT_VERSION})"
        )
    return state


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and every CUDA device) global generator states."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": np_name,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    saved = state["numpy"]
    np.random.set_state(
        (saved["name"], saved["keys"].numpy().astype(np.uint32), saved["pos"], saved["has_gauss"], saved["gauss"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _inference_build(config: BuildConfig) -> BuildConfig | None:
    """The inference build of a ConStyle model built for training (no momentum encoder or queue), else None."""
    inference = config.without("contrastive", "constyle_options")
    return None if inference == config else inference


def export_inference_weights(
    model: nn.Module, build_config: BuildConfig, path: Path, *, native_tile: int | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write ``model``'s weights as a deployable safetensors file that :func:`irconstyle.load` reads.

    A ConStyle model built for training carries the momentum encoder and the queue; the file holds the
    inference layout instead (query encoder and body), built without ``contrastive``. ``native_tile`` is
    recorded in the descriptor for ``tile="auto"`` (see :func:`irconstyle.inference.resolve_tile`). Building
    that layout does not draw from the global random generator (its initial weights are overwritten at once),
    so exporting in the middle of a run leaves the run's random stream (dropout) as it was.
    """
    config = _inference_build(build_config)
    network = model
    if config is not None:
        with torch.random.fork_rng(devices=[]):
            network = config.build()
        wanted = network.state_dict().keys()
        network.load_state_dict({k: v for k, v in model.state_dict().items() if k in wanted}, strict=True)
    save(describe(network, config or build_config, native_tile=native_tile), path, metadata=metadata)


def load_initial_weights(model: nn.Module, build_config: BuildConfig, path: Path, *, deeper: bool = False
                         ) -> list[str]:
    """Start a new run from the inference weights in ``path`` (ours or the authors'), read strictly.

    For a ConStyle model built for training, the momentum encoder starts as a copy of the loaded query
    encoder (as MoCo starts) and the queue keeps its fresh initialisation. ``deeper``: the model may have
    more blocks than the file's (see :func:`~irconstyle.models.checkpoint.load_checkpoint_into_deeper`);
    returns the names of those new blocks.
    """
    config = _inference_build(build_config)
    inference = None if config is None else config.build()
    target = model if inference is None else inference
    if deeper:
        new_blocks = load_checkpoint_into_deeper(target, path)
    else:
        load_checkpoint(target, path)
        new_blocks = []
    if inference is not None:
        model.load_state_dict(inference.state_dict(), strict=False)
        model.constyle.key_encoder.load_state_dict(model.constyle.encoder.state_dict())
    return new_blocks
