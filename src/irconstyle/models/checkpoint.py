"""Saving and loading weights: our safetensors files and the authors' ``.pth`` checkpoints.

Nothing here unpickles code: ``.pth`` files are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from irconstyle.atomic import atomic_write
from irconstyle.models import official
from irconstyle.models.constyle import ConStyle, ConStyleEncoder
from irconstyle.models.detection import unwrap_state_dict

FORMAT = "irconstyle"


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not fit the model."""


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        return load_file(str(path)), metadata
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None


def read_header(path: str | os.PathLike) -> dict[str, str]:
    """The raw metadata of an irconstyle safetensors file, read without its tensors."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = handle.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
    if raw.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an irconstyle model file (no irconstyle metadata)")
    return raw


def read_metadata(path: str | os.PathLike) -> dict[str, object]:
    """What an irconstyle safetensors file says about itself (task, licence, source, …), without its tensors.

    Values are decoded from JSON; the architecture and format entries are left out.
    """
    return decode_metadata(read_header(path))


def decode_metadata(raw: dict[str, str]) -> dict[str, object]:
    """A file's metadata values decoded from JSON (text that is not JSON kept as text), without the format and
    architecture entries."""
    values: dict[str, object] = {}
    for key, text in raw.items():
        if key not in ("format", "architecture"):
            try:
                values[key] = json.loads(text)
            except json.JSONDecodeError:
                values[key] = text
    return values


def write_safetensors(state: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str]) -> None:
    """Write tensors and string metadata as a safetensors file, atomically, readable by everyone."""
    state = {key: tensor.detach().contiguous() for key, tensor in state.items()}
    with atomic_write(Path(path)) as temporary:
        save_file(state, temporary, metadata={"format": FORMAT, **metadata})
        os.chmod(temporary, 0o644)  # safetensors creates owner-only files; weights are meant to be shared


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and raw metadata of an irconstyle safetensors file (no pickled code is run)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    return _read_safetensors(path)


def read_authors_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a ``.pth`` checkpoint, read weights-only, out of any wrapper (see
    :func:`irconstyle.models.detection.unwrap_state_dict`), keys as the file has them."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types here, all mean "this file is not usable"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: cannot be read as a weights-only PyTorch checkpoint ({first_line})") from None
    try:
        return unwrap_state_dict(checkpoint)
    except ValueError as error:
        raise CheckpointError(f"{path}: {error}") from None


def load_checkpoint(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load weights into ``model`` strictly, from our safetensors or an authors' ``.pth`` checkpoint.

    Authors' files may hold their state dict in a wrapper (``{"params_ema": …}``, ``{"params": …}``,
    ``{"state_dict": …}`` …; ``params_ema`` preferred), in the training or inference layout, with or without a
    ``module.`` prefix; their keys go through
    :func:`irconstyle.models.official.convert_state_dict`. A missing, unexpected or mis-shaped tensor raises
    one :class:`CheckpointError` listing them all.
    """
    path = Path(path)
    load_strict(model, _read_weights(model, path), path)
    return model


def load_checkpoint_into_deeper(model: nn.Module, path: str | os.PathLike) -> list[str]:
    """:func:`load_checkpoint` into a model with more blocks per stage than the file's; returns the new blocks.

    A block of ``model`` that starts as the identity (a ``starts_as_identity`` attribute, as NAFBlocks have)
    and of which the file holds no tensor keeps its fresh initialisation, so the deeper model computes what
    the file's model did and training grows it from there. Anything else missing is an error, as in
    :func:`load_checkpoint`.
    """
    path = Path(path)
    return load_strict(model, _read_weights(model, path), path, allow_new_blocks=True)


# A ConStyle's keys (relative to the ConStyle module) that are stage-1 training state or v2's classification
# head: :func:`load_constyle` leaves them out by name when the target ConStyle has no place for them.
_CLASSIFIER_KEY = re.compile(r"^(?:key_)?encoder\.classifier\.")
_CONTRAST_KEY = re.compile(r"^(?:key_encoder\.|queue$|queue_ptr$)")


def load_constyle(target: ConStyle | ConStyleEncoder, path: str | os.PathLike) -> ConStyle | ConStyleEncoder:
    """Load a pre-trained ConStyle encoder into ``target``, strictly, and return ``target``.

    ``target``: a restorer's ``model.constyle`` (ConStyle v2's stage 2, the ``model.constyle.pretrained`` key)
    or a bare :class:`ConStyleEncoder`, such as the degradation classifier's ``model.encoder``
    (``model.init_encoder_from``). ``path``: ConStyle v2's stage-1 checkpoint (``{"params_ema": ...}`` as v2
    saves it; ``params_ema`` preferred), an authors' ConStyle restorer ``.pth`` (its ``ConStyle.*`` part), or
    one of our safetensors model files holding a ConStyle (its ``constyle.*`` part). The query encoder is
    loaded strictly: a missing, mis-shaped or unknown tensor is a :class:`CheckpointError`. v2's
    classification head is loaded when the target encoder has one and otherwise left out (it only serves
    stage 1's classification loss); so are the momentum encoder and queue, which are stage-1 training state:
    a contrastive ConStyle starts its momentum encoder as a copy of the loaded query encoder, as MoCo starts,
    and keeps its fresh queue.
    """
    path = Path(path)
    encoder = target.encoder if isinstance(target, ConStyle) else target
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        state = _read_safetensors(path)[0]
    else:
        architecture = official.ARCHITECTURES["ConStyleV2Prompter"]
        state = {
            official.convert_key(key.removeprefix("module.").removeprefix("ConStyle."), architecture): tensor
            for key, tensor in read_authors_checkpoint(path).items()
        }
    state = {key.removeprefix("constyle."): tensor for key, tensor in state.items() if key.startswith("constyle.")}
    if not state:
        raise CheckpointError(f"{path}: holds no ConStyle weights (no ConStyle encoder keys)")
    has_classifier = encoder.classifier is not None
    encoder_state = {
        key.removeprefix("encoder."): tensor
        for key, tensor in state.items()
        if not _CONTRAST_KEY.match(key) and (has_classifier or not _CLASSIFIER_KEY.match(key))
    }
    load_strict(encoder, encoder_state, path)
    if isinstance(target, ConStyle) and target.contrastive:
        target.key_encoder.load_state_dict(target.encoder.state_dict())
    return target


def _read_weights(model: nn.Module, path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)[0]
    return official.convert_state_dict(read_authors_checkpoint(path), model)


def load_strict(
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
