"""Installed models, by the names other code has always imported them under; they live in
:mod:`irconstyle.zoo.installed` (the user's folder) and :mod:`irconstyle.zoo.pretrained` (the registry)."""

from irconstyle.zoo.installed import InstalledModel, installed_model_path, installed_models, user_model_dir
from irconstyle.zoo.pretrained import install

__all__ = ["InstalledModel", "install", "installed_model_path", "installed_models", "user_model_dir"]
