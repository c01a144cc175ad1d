"""irconstyle: IRConStyle image restoration — ConStyle + NAFNet / Restormer / MAXIM in PyTorch."""

from irconstyle.detect import Detection, detect
from irconstyle.models.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from irconstyle.models.registry import build_model, list_models
from irconstyle.restoration import restore

__all__ = [
    "CheckpointError",
    "Detection",
    "build_model",
    "detect",
    "list_models",
    "load_checkpoint",
    "load_model",
    "restore",
    "save_checkpoint",
]
__version__ = "0.1.0"
