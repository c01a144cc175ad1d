"""Architectures: the ConStyle encoder, the restoration U-Nets built on it, and the Origin baselines."""

from irconstyle.models.constyle import ConStyle, ConStyleEncoder, ConStyleOutput, ConStyleRestorer
from irconstyle.models.registry import build_model, list_models

__all__ = ["ConStyle", "ConStyleEncoder", "ConStyleOutput", "ConStyleRestorer", "build_model", "list_models"]
