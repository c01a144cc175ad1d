"""The explicit table of named architectures behind :func:`build_model`, and :class:`BuildConfig`, the name and
arguments that rebuild one."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn

from irconstyle.models.constyle import ConStyleV2Prompter
from irconstyle.models.detector import DegradationClassifier
from irconstyle.models.kbnet import ConStyleKBNet, KBNet
from irconstyle.models.maxim import ConStyleMaxim, Maxim, MaximMultiStage
from irconstyle.models.nafnet import ConStyleNAFNet, NAFNet
from irconstyle.models.restormer import ConStyleRestormer, Restormer
from irconstyle.models.uformer import ConStyleUformer, Uformer


@dataclass(frozen=True)
class ModelEntry:
    """One architecture: its class, what it is, its default arguments, a small configuration of the same
    code paths (every level, block kind and branch, few channels) that tests and examples build in milliseconds,
    and its kind: a ``"restorer"`` (image in, image of the same size out: restore, tiling, eval) or a
    ``"classifier"`` (image in, class logits out: it builds, saves, loads and exports, but restores nothing).

    ``small`` has no default: the tests run over every entry at its small configuration (an empty one where the
    defaults are already small) and fail on an entry without one.
    """

    factory: Callable[..., nn.Module]
    description: str
    small: dict[str, Any] | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    kind: Literal["restorer", "classifier"] = "restorer"


_SMALL_RESTORMER_BODY = {"width": 8, "refinement_blocks": 1, "heads": [1, 2, 2, 4]}
MODELS: dict[str, ModelEntry] = {
    "constyle_nafnet": ModelEntry(
        ConStyleNAFNet, "ConStyle + NAFNet-block U-Net (CNN), paper size",
        small={"width": 8, "encoder_blocks": [1, 1, 1], "bottleneck_blocks": 1, "decoder_blocks": [1, 1, 1]},
    ),
    "constyle_restormer": ModelEntry(
        ConStyleRestormer, "ConStyle + Restormer-block U-Net (transformer), paper size",
        small={**_SMALL_RESTORMER_BODY, "encoder_blocks": [1, 1, 1], "bottleneck_blocks": 1,
               "decoder_blocks": [1, 1, 1]},
    ),
    "constyle_maxim": ModelEntry(
        ConStyleMaxim, "ConStyle + MAXIM-block U-Net (MLP), paper size", small={"features": 8, "bottleneck_blocks": 1}
    ),
    "constyle_uformer": ModelEntry(
        ConStyleUformer, "ConStyle + Uformer LeWin-block U-Net (window transformer)",
        small={"img_size": 32, "width": 8, "depths": [1, 1, 1, 1, 1, 1, 1], "heads": [1, 1, 2, 2, 2, 1, 1],
               "window_size": 4},
    ),
    "constyle_kbnet": ModelEntry(
        ConStyleKBNet, "ConStyle + KBNet-block U-Net (kernel basis attention), paper size",
        small={"width": 8, "encoder_blocks": [1, 1, 1], "bottleneck_blocks": 1, "decoder_blocks": [1, 1, 1]},
    ),
    "nafnet": ModelEntry(
        NAFNet, "Origin NAFNet baseline, the IRConStyle repo's configuration",
        small={"width": 8, "encoder_blocks": [1, 1], "bottleneck_blocks": 1, "decoder_blocks": [1, 1]},
    ),
    "restormer": ModelEntry(
        Restormer, "Origin Restormer baseline, standard configuration",
        small={**_SMALL_RESTORMER_BODY, "level_blocks": [1, 1, 1, 1]},
    ),
    "maxim": ModelEntry(Maxim, "Origin MAXIM-1S baseline", small={"features": 8}),
    "kbnet": ModelEntry(
        KBNet, "Origin KBNet baseline, the IRConStyle repo's configuration",
        small={"width": 8, "encoder_blocks": [1, 1], "bottleneck_blocks": 1, "decoder_blocks": [1, 1]},
    ),
    "uformer": ModelEntry(
        Uformer, "Origin Uformer baseline, the published constructor defaults (modulator off)",
        small={"img_size": 32, "width": 4, "depths": [1, 1, 1, 1, 1, 1, 1, 1, 1],
               "heads": [1, 1, 2, 2, 2, 2, 2, 1, 1], "window_size": 2},
    ),
    "constyle_v2_prompter": ModelEntry(
        ConStyleV2Prompter, "ConStyle v2's stage-1 prompter: image -> degradation-class logits (not a restorer)",
        small={"latent_dim": 16, "classes": 4}, kind="classifier",
    ),
    "maxim_multistage": ModelEntry(
        MaximMultiStage, "Google's multi-stage MAXIM (2S / 3S), the architecture of its published trained weights",
        small={"stages": 2, "features": 8, "block_size_high_res": [4, 4], "grid_size_high_res": [4, 4],
               "block_size_low_res": [2, 2], "grid_size_low_res": [2, 2]},
    ),
    "degradation_classifier": ModelEntry(
        DegradationClassifier, "ConStyle encoder + class and noise-level heads: which degradation a photo has",
        small={"latent_dim": 16}, kind="classifier",
    ),
}


def list_models() -> list[str]:
    """Names accepted by :func:`build_model`."""
    return sorted(MODELS)


@dataclass(frozen=True)
class BuildConfig:
    """What rebuilds a model: an architecture name of :data:`MODELS` and its keyword arguments (defaults merged).

    Files store it as JSON (``{"name": …, "kwargs": …}``) so that a model loads from its file alone.
    """

    architecture: str
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, architecture: str, **options: Any) -> BuildConfig:
        """The configuration of ``architecture`` with ``options`` over its defaults; unknown names raise."""
        return cls(architecture, {**_entry(architecture).defaults, **options})

    def build(self) -> nn.Module:
        """A fresh model of this configuration (training mode, freshly initialised)."""
        try:
            return _entry(self.architecture).factory(**self.options)
        except TypeError as error:
            raise TypeError(f"build_model({self.architecture!r}): {error}") from None

    def replace(self, **options: Any) -> BuildConfig:
        """The same architecture with some options changed."""
        return BuildConfig(self.architecture, {**self.options, **options})

    def without(self, *names: str) -> BuildConfig:
        """The same architecture with some options left at their defaults."""
        return BuildConfig(self.architecture, {k: v for k, v in self.options.items() if k not in names})

    def canonical(self) -> BuildConfig:
        """The same configuration with every constructor keyword spelled out (its default where not given) and
        in JSON types, so that two configurations of one network compare equal. Keywords that take code (a
        block factory) are not configuration and are left out."""
        signature = inspect.signature(_entry(self.architecture).factory)
        defaults = {
            name: parameter.default for name, parameter in signature.parameters.items()
            if parameter.default is not inspect.Parameter.empty and not callable(parameter.default)
        }
        return BuildConfig(self.architecture, json.loads(json.dumps({**defaults, **self.options})))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.architecture, "kwargs": json.loads(json.dumps(dict(self.options)))}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BuildConfig:
        """The inverse of :meth:`to_dict`; raises ValueError for a malformed one."""
        if not isinstance(data, Mapping) or not isinstance(data.get("name"), str) or not isinstance(
            data.get("kwargs", {}), Mapping
        ):
            raise ValueError(f"an architecture is {{'name': str, 'kwargs': dict}}, got {data!r}")
        _entry(data["name"])
        return cls(data["name"], dict(data.get("kwargs", {})))


def _entry(name: str) -> ModelEntry:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}") from None


def is_restorer(architecture: str) -> bool:
    """Whether the registered ``architecture`` restores images (its entry's kind is ``"restorer"``)."""
    return _entry(architecture).kind == "restorer"


def architecture_name(model: nn.Module) -> str | None:
    """The :data:`MODELS` name of ``model``'s class, or None for a module from elsewhere."""
    return next((name for name, entry in MODELS.items() if type(model) is entry.factory), None)


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a named architecture; keyword arguments override its defaults.

    The module is a plain ``nn.Module``; :func:`irconstyle.build` returns it with its
    :class:`~irconstyle.zoo.ModelDescriptor`, which saving needs (the module does not carry its arguments).
    """
    return BuildConfig.create(name, **kwargs).build()
