"""What a model is, next to the module that computes it: the :class:`ModelDescriptor` that restore, eval,
tiling and saving ask (architecture and arguments, task, size multiple, native tile, precisions, provenance)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from irconstyle.models.registry import BuildConfig, architecture_name, is_restorer

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class ModelDescriptor:
    """A restoration network and the facts about it that the code around it needs.

    ``build_config`` rebuilds the network (None for a module that was not built from :data:`irconstyle.models.
    registry.MODELS`; such a descriptor restores but cannot be saved). ``size_multiple``: the sides the network
    computes on natively (it pads other sizes itself; tiles must be multiples). ``native_tile``: the tile size
    the weights restore best in (``tile="auto"`` uses it), for weights whose global poolings were trained on
    patches of that size. ``precisions``: the ``precision`` values restore accepts for it. ``name`` is the
    pretrained registry's name for these weights, if they have one. ``metadata``: anything else the weights'
    file records (training config, iterations), kept so that a re-save loses nothing.
    """

    model: nn.Module
    build_config: BuildConfig | None
    size_multiple: int = 1
    task: str | None = None
    native_tile: int | None = None
    precisions: tuple[str, ...] = PRECISIONS
    name: str | None = None
    description: str = ""
    licence: str = ""
    source: str = ""
    training_data: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.size_multiple, int) or self.size_multiple < 1:
            raise ValueError(f"size_multiple must be a positive integer, got {self.size_multiple!r}")
        tile = self.native_tile
        if tile is not None and (
            not isinstance(tile, int) or isinstance(tile, bool) or tile < self.size_multiple
            or tile % self.size_multiple
        ):
            raise ValueError(f"native_tile must be a positive multiple of {self.size_multiple}, got {tile!r}")
        unknown = sorted(set(self.precisions) - set(PRECISIONS))
        if unknown or not self.precisions:
            raise ValueError(f"precisions must be a non-empty subset of {PRECISIONS}, got {self.precisions!r}")

    @property
    def architecture(self) -> str:
        """The registry name of the architecture, or the module's class name for a module from elsewhere."""
        return self.build_config.architecture if self.build_config else type(self.model).__name__

    @property
    def restores(self) -> bool:
        """Whether the network restores images (False for a registered classifier, such as ConStyle v2's
        prompter); a module from elsewhere is taken to be a restorer."""
        return self.build_config is None or is_restorer(self.build_config.architecture)

    def check_restorer(self, source: object) -> ModelDescriptor:
        """This descriptor, or a ValueError naming ``source`` where the network is not a restorer."""
        if not self.restores:
            raise ValueError(
                f"{source}: a {self.architecture} model is a classifier (image -> class logits), not a restorer"
            )
        return self

    @property
    def parameters(self) -> int:
        """How many parameters the network has (buffers not counted)."""
        return sum(parameter.numel() for parameter in self.model.parameters())

    def with_facts(self, **facts: Any) -> ModelDescriptor:
        """The same network with some facts changed (``native_tile=128``, ``task="dehaze"``, …), checked again."""
        return replace(self, **facts)

    def to(self, device: str | torch.device) -> ModelDescriptor:
        """Moves the network to ``device`` and returns this descriptor."""
        self.model.to(device)
        return self

    def eval(self) -> ModelDescriptor:
        """Puts the network in eval mode and returns this descriptor."""
        self.model.eval()
        return self

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image)


def describe(
    model: nn.Module | ModelDescriptor, build_config: BuildConfig | None = None, **facts: Any
) -> ModelDescriptor:
    """The descriptor of ``model``: a descriptor as it is (with ``facts`` applied), or a module with
    ``build_config`` and ``facts``.

    A module of a registered restoration architecture has its size multiple read from the architecture (each
    declares ``size_multiple``); a classifier and a module from elsewhere are taken to accept any size unless
    ``facts`` say otherwise.
    """
    if isinstance(model, ModelDescriptor):
        return model.with_facts(**facts) if facts else model
    if build_config is not None and architecture_name(model) != build_config.architecture:
        raise ValueError(f"a {type(model).__name__} is not a {build_config.architecture} model")
    architecture = architecture_name(model)
    if "size_multiple" not in facts and architecture is not None and is_restorer(architecture):
        facts["size_multiple"] = int(model.size_multiple)
    return ModelDescriptor(model=model, build_config=build_config, **facts)


def build(name: str, **options: Any) -> ModelDescriptor:
    """Build a registered architecture (see :func:`irconstyle.list_models`) with ``options`` over its defaults,
    freshly initialised, in training mode; the descriptor saves and reloads it."""
    config = BuildConfig.create(name, **options)
    return describe(config.build(), config)
