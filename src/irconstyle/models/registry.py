"""The explicit table of named architectures behind :func:`build_model`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from irconstyle.models.detector import DegradationClassifier
from irconstyle.models.maxim import ConStyleMaxim, Maxim, MaximMultiStage
from irconstyle.models.nafnet import ConStyleNAFNet, NAFNet
from irconstyle.models.restormer import ConStyleRestormer, Restormer


@dataclass(frozen=True)
class ModelEntry:
    factory: Callable[..., nn.Module]
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)


MODELS: dict[str, ModelEntry] = {
    "constyle_nafnet": ModelEntry(ConStyleNAFNet, "ConStyle + NAFNet-block U-Net (CNN), paper size"),
    "constyle_restormer": ModelEntry(ConStyleRestormer, "ConStyle + Restormer-block U-Net (transformer), paper size"),
    "constyle_maxim": ModelEntry(ConStyleMaxim, "ConStyle + MAXIM-block U-Net (MLP), paper size"),
    "nafnet": ModelEntry(NAFNet, "Origin NAFNet baseline, the IRConStyle repo's configuration"),
    "restormer": ModelEntry(Restormer, "Origin Restormer baseline, standard configuration"),
    "maxim": ModelEntry(Maxim, "Origin MAXIM-1S baseline"),
    "maxim_multistage": ModelEntry(
        MaximMultiStage, "Google's multi-stage MAXIM (2S / 3S), the architecture of its published trained weights"
    ),
    "degradation_classifier": ModelEntry(
        DegradationClassifier, "ConStyle encoder + class and noise-level heads: which degradation a photo has"
    ),
}


def list_models() -> list[str]:
    """Names accepted by :func:`build_model`."""
    return sorted(MODELS)


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a named architecture; keyword arguments override its defaults.

    The model remembers its name and arguments (``model.build_config``) so that
    :func:`irconstyle.save_checkpoint` can store them and :func:`irconstyle.load_model` rebuild it.
    """
    try:
        entry = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}") from None
    arguments = {**entry.defaults, **kwargs}
    try:
        model = entry.factory(**arguments)
    except TypeError as error:
        raise TypeError(f"build_model({name!r}): {error}") from None
    model.build_config = {"name": name, "kwargs": arguments}
    return model
