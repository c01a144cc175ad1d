"""Saving and loading weights: our safetensors files and the authors' ``.pth`` checkpoints.

Nothing here unpickles code: ``.pth`` files are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from irconstyle.atomic import atomic_write
from irconstyle.models import official
from irconstyle.models.registry import build_model

FORMAT = "irconstyle"


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not fit the model."""


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and raw metadata of a safetensors file; :class:`CheckpointError` if it cannot be read."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        return load_file(str(path)), metadata
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None


def read_metadata(path: str | os.PathLike) -> dict[str, object]:
    """What an irconstyle safetensors file says about itself (task, licence, source, …), without its tensors.

    Values are decoded from JSON; the architecture and format entries are left out.
    """
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = handle.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
    if raw.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an irconstyle model file (no irconstyle metadata)")
    values: dict[str, object] = {}
    for key, text in raw.items():
        if key not in ("format", "architecture"):
            try:
                values[key] = json.loads(text)
            except json.JSONDecodeError:
                values[key] = text
    return values


def save_checkpoint(model: nn.Module, path: str | os.PathLike, *, extra_metadata: dict | None = None) -> None:
    """Write the model's weights as safetensors, atomically, with its architecture in the metadata.

    The model must come from :func:`irconstyle.build_model` (or :func:`load_model`), which records its
    name and arguments.
    """
    config = getattr(model, "build_config", None)
    if config is None:
        raise CheckpointError(
            f"{type(model).__name__} was not built with irconstyle.build_model, so its architecture "
            "arguments are unknown; build it with build_model(name, **kwargs) to save it"
        )
    metadata = {"format": FORMAT, "architecture": json.dumps(config, sort_keys=True)}
    if getattr(model, "native_tile", None):
        metadata["native_tile"] = json.dumps(model.native_tile)
    if extra_metadata:
        metadata.update({key: json.dumps(value) for key, value in extra_metadata.items()})
    state = {key: tensor.detach().contiguous() for key, tensor in model.state_dict().items()}
    with atomic_write(Path(path)) as temporary:
        save_file(state, temporary, metadata=metadata)
        os.chmod(temporary, 0o644)  # safetensors creates owner-only files; weights are meant to be shared


def load_model(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model from a file written by :func:`save_checkpoint` alone, in eval mode.

    A ``native_tile`` in the file's metadata becomes the model's attribute of that name: the tile size that
    ``tile="auto"`` restores with (see :func:`irconstyle.inference.resolve_tile`).
    """
    path = Path(path)
    state, metadata = read_safetensors(path)
    if metadata.get("format") != FORMAT or "architecture" not in metadata:
        raise CheckpointError(f"{path}: no irconstyle architecture metadata; use load_checkpoint with a model")
    config = json.loads(metadata["architecture"])
    model = build_model(config["name"], **config["kwargs"])
    _load_strict(model, state, path)
    if "native_tile" in metadata:
        native_tile = json.loads(metadata["native_tile"])
        multiple = getattr(model, "size_multiple", 1)
        if not isinstance(native_tile, int) or native_tile < multiple or native_tile % multiple:
            raise CheckpointError(f"{path}: native_tile must be a positive multiple of {multiple}, got {native_tile}")
        model.native_tile = native_tile
    return model.to(map_location).eval()


def _read_official(path: Path) -> dict[str, torch.Tensor]:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types here, all mean "this file is not usable"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: cannot be read as a weights-only PyTorch checkpoint ({first_line})") from None
    if isinstance(checkpoint, dict):
        for key in ("params_ema", "params", "state_dict"):
            if isinstance(checkpoint.get(key), dict):
                checkpoint = checkpoint[key]
                break
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise CheckpointError(f"{path}: expected a state dict (optionally under 'params_ema' or 'params')")
    return checkpoint


def load_checkpoint(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load weights into ``model`` strictly, from our safetensors or an authors' ``.pth`` checkpoint.

    Authors' files may hold ``{"params_ema": …}`` or ``{"params": …}`` (``params_ema`` preferred), in the
    training or inference layout, with or without a ``module.`` prefix; their keys go through
    :func:`irconstyle.models.official.convert_state_dict`. A missing, unexpected or mis-shaped tensor raises
    one :class:`CheckpointError` listing them all.
    """
    path = Path(path)
    _load_strict(model, _read_weights(model, path), path)
    return model


def load_checkpoint_into_deeper(model: nn.Module, path: str | os.PathLike) -> list[str]:
    """:func:`load_checkpoint` into a model with more blocks per stage than the file's; returns the new blocks.

    A block of ``model`` that starts as the identity (a ``starts_as_identity`` attribute, as NAFBlocks have)
    and of which the file holds no tensor keeps its fresh initialisation, so the deeper model computes what
    the file's model did and training grows it from there. Anything else missing is an error, as in
    :func:`load_checkpoint`.
    """
    path = Path(path)
    return _load_strict(model, _read_weights(model, path), path, allow_new_blocks=True)


def _read_weights(model: nn.Module, path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        return read_safetensors(path)[0]
    return official.convert_state_dict(_read_official(path), model)


def _load_strict(
    model: nn.Module, state: dict[str, torch.Tensor], path: Path, *, allow_new_blocks: bool = False
) -> list[str]:
    expected = model.state_dict()
    new_blocks = _identity_blocks_absent_from(model, state) if allow_new_blocks else []
    missing = sorted(
        key for key in set(expected) - set(state) if not any(key.startswith(f"{block}.") for block in new_blocks)
    )
    unexpected = sorted(set(state) - set(expected))
    mis_shaped = sorted(
        f"{key} (file {tuple(state[key].shape)}, model {tuple(expected[key].shape)})"
        for key in set(expected) & set(state)
        if state[key].shape != expected[key].shape
    )
    shared = sorted(set(expected) & set(state))
    mistyped = [
        f"{key} (file {state[key].dtype}, model {expected[key].dtype})"
        for key in shared
        if state[key].is_floating_point() != expected[key].is_floating_point()
    ]
    non_finite = [key for key in shared if state[key].is_floating_point() and not bool(state[key].isfinite().all())]
    problems = []
    labelled = (
        ("missing", missing), ("unexpected", unexpected), ("mis-shaped", mis_shaped),
        ("of the wrong dtype", mistyped), ("with NaN or infinite values", non_finite),
    )
    for label, keys in labelled:
        if keys:
            shown = ", ".join(keys[:20]) + (f", … ({len(keys) - 20} more)" if len(keys) > 20 else "")
            problems.append(f"{len(keys)} {label}: {shown}")
    if problems:
        raise CheckpointError(f"{path}: does not fit {type(model).__name__}: " + "; ".join(problems))
    model.load_state_dict(state, strict=not new_blocks)
    return new_blocks


def _identity_blocks_absent_from(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the model's identity-at-initialisation blocks of which ``state`` holds no tensor."""
    return [
        name for name, module in model.named_modules()
        if getattr(module, "starts_as_identity", False) and not any(key.startswith(f"{name}.") for key in state)
    ]
