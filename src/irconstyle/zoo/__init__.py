"""The model zoo: what a model is (:class:`ModelDescriptor`), its file (:func:`load`, :func:`save`), and the
pretrained registry of named weights (bundled, Google's MAXIM releases, installed)."""

from irconstyle.zoo.descriptor import PRECISIONS, ModelDescriptor, build, describe
from irconstyle.zoo.files import load_file, save
from irconstyle.zoo.pretrained import (
    PretrainedEntry,
    load,
    load_pretrained,
    pretrained_entry,
    pretrained_models,
    resolve,
)

__all__ = [
    "PRECISIONS",
    "ModelDescriptor",
    "PretrainedEntry",
    "build",
    "describe",
    "load",
    "load_file",
    "load_pretrained",
    "pretrained_entry",
    "pretrained_models",
    "resolve",
    "save",
]
