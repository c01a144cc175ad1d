"""irconstyle: IRConStyle image restoration — ConStyle + NAFNet / Restormer / MAXIM in PyTorch."""

from irconstyle.models.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from irconstyle.models.registry import build_model, list_models

__all__ = [
    "CheckpointError",
    "build_model",
    "list_models",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
]
__version__ = "0.1.0"
