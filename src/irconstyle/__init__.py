"""irconstyle: IRConStyle image restoration — ConStyle + NAFNet / Restormer / MAXIM in PyTorch."""

from __future__ import annotations

import os

import torch
from torch import nn

from irconstyle.detect import Detection, detect
from irconstyle.models.checkpoint import CheckpointError, load_checkpoint
from irconstyle.models.registry import build_model
from irconstyle.restoration import restore
from irconstyle.zoo import ModelDescriptor, build, describe, load, load_file, pretrained_models, save

save_checkpoint = save


def load_model(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> nn.Module:
    """The network of a model file (ours, or an authors' ``.pth``), in eval mode; :func:`load` gives its
    descriptor too."""
    return load_file(path, map_location=map_location).model


def list_models(*, pretrained: bool = False) -> list[str]:
    """The architectures :func:`build` knows, or with ``pretrained`` the names of the pretrained weights
    (bundled, Google's MAXIM releases whether installed or not, and the user's installed models)."""
    from irconstyle.models.registry import list_models as architectures

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
