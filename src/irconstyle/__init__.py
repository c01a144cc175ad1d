"""irconstyle: IRConStyle image restoration — ConStyle + NAFNet / Restormer / MAXIM in PyTorch."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from irconstyle._lazy import make_lazy

if TYPE_CHECKING:
    import torch
    from torch import nn

    from irconstyle.detect import Detection, detect
    from irconstyle.models.checkpoint import CheckpointError, load_checkpoint
    from irconstyle.models.registry import build_model
    from irconstyle.restoration import restore
    from irconstyle.zoo import ModelDescriptor, build, describe, load, pretrained_models, save
    from irconstyle.zoo import save as save_checkpoint

# Imported on first use (see irconstyle._lazy): ``import irconstyle`` alone costs no torch.
make_lazy(__name__, {
    "CheckpointError": "irconstyle.models.checkpoint",
    "Detection": "irconstyle.detect",
    "ModelDescriptor": "irconstyle.zoo",
    "build": "irconstyle.zoo",
    "build_model": "irconstyle.models.registry",
    "describe": "irconstyle.zoo",
    "detect": "irconstyle.detect",
    "load": "irconstyle.zoo",
    "load_checkpoint": "irconstyle.models.checkpoint",
    "load_file": "irconstyle.zoo",
    "pretrained_models": "irconstyle.zoo",
    "restore": "irconstyle.restoration",
    "save": "irconstyle.zoo",
    "save_checkpoint": "irconstyle.zoo:save",
})


def load_model(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> nn.Module:
    """The network of a model file (ours, or an authors' ``.pth``), in eval mode; :func:`load` gives its
    descriptor too."""
    from irconstyle.zoo import load_file

    return load_file(path, map_location=map_location).model


def list_models(*, pretrained: bool = False) -> list[str]:
    """The architectures :func:`build` knows, or with ``pretrained`` the names of the pretrained weights
    (bundled, Google's MAXIM releases whether installed or not, and the user's installed models)."""
    from irconstyle.models.registry import list_models as architectures
    from irconstyle.zoo import pretrained_models

    return [entry.name for entry in pretrained_models()] if pretrained else architectures()


__all__ = [
    "CheckpointError",
    "Detection",
    "ModelDescriptor",
    "build",
    "build_model",
    "describe",
    "detect",
    "list_models",
    "load",
    "load_checkpoint",
    "load_model",
    "pretrained_models",
    "restore",
    "save",
    "save_checkpoint",
]
__version__ = "0.1.0"
