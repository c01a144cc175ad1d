"""A model's file: its weights as safetensors, and in the metadata the build configuration and the descriptor's
facts, so that :func:`load_file` rebuilds the whole descriptor from the file alone."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from irconstyle.models.checkpoint import (
    FORMAT,
    CheckpointError,
    decode_metadata,
    load_strict,
    read_header,
    read_safetensors,
    write_safetensors,
)
from irconstyle.models.registry import BuildConfig
from irconstyle.zoo.descriptor import PRECISIONS, ModelDescriptor, describe

AUTHORS_SUFFIXES = (".pth", ".pt", ".ckpt")  # torch.save files: the authors' checkpoints
# Descriptor fields a file records under their own names (JSON-encoded), besides "architecture".
_FACTS = ("task", "native_tile", "precisions", "description", "licence", "source", "training_data")


def save(descriptor: ModelDescriptor, path: str | os.PathLike, *, metadata: dict[str, Any] | None = None) -> None:
    """Write the network's weights, its build configuration and facts as one safetensors file, atomically.

    ``metadata``: more facts to record (JSON-encodable), over those the descriptor carries from its file.
    """
    if not isinstance(descriptor, ModelDescriptor):
        raise CheckpointError(
            f"save needs a ModelDescriptor (irconstyle.build(name, …) or irconstyle.load(path)), not a bare "
            f"{type(descriptor).__name__}: a module does not record the arguments that rebuild it"
        )
    if descriptor.build_config is None:
        raise CheckpointError(
            f"{descriptor.architecture} was not built from irconstyle's architectures, so the arguments that "
            "rebuild it are unknown; build it with irconstyle.build(name, **options) to save it"
        )
    facts: dict[str, Any] = {**descriptor.metadata, **(metadata or {})}
    recorded = {
        "task": descriptor.task, "native_tile": descriptor.native_tile, "description": descriptor.description,
        "licence": descriptor.licence, "source": descriptor.source, "training_data": descriptor.training_data,
        "precisions": list(descriptor.precisions) if descriptor.precisions != PRECISIONS else None,
    }
    facts.update({key: value for key, value in recorded.items() if value})
    encoded = {key: json.dumps(value) for key, value in facts.items()}
    encoded["architecture"] = descriptor.build_config.to_json()
    write_safetensors(descriptor.model.state_dict(), path, encoded)


def load_file(path: str | os.PathLike, *, map_location: str | torch.device = "cpu", name: str | None = None
         ) -> ModelDescriptor:
    """Rebuild the model written by :func:`save` from its file alone: the descriptor, network in eval mode.

    A ``.pth`` checkpoint (the authors' or one saved with ``torch.save``) is read weights-only and its
    architecture detected from its keys and shapes. ``name``: the pretrained registry's name for these weights,
    recorded in the descriptor.
    """
    path = Path(path)
    if path.suffix in AUTHORS_SUFFIXES:
        from irconstyle.convert.authors import convert_authors_checkpoint

        return describe(convert_authors_checkpoint(path), name=name).to(map_location).eval()
    state, raw = read_safetensors(path)
    if raw.get("format") != FORMAT or "architecture" not in raw:
        raise CheckpointError(f"{path}: no irconstyle architecture metadata; use load_checkpoint with a model")
    metadata = decode_metadata(raw)
    try:
        config = BuildConfig.from_dict(json.loads(raw["architecture"]))
        model = config.build()
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{path}: its architecture cannot be built ({error})") from None
    load_strict(model, state, path)
    facts = {key: metadata.pop(key) for key in _FACTS if key in metadata}
    if "training_set" in metadata and "training_data" not in facts:
        facts["training_data"] = metadata.pop("training_set")
    if "precisions" in facts:
        facts["precisions"] = tuple(facts["precisions"])
    try:
        descriptor = describe(model, config, name=name, metadata=metadata, **facts)
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{path}: {error}") from None
    return descriptor.to(map_location).eval()


def read_build_config(path: str | os.PathLike) -> BuildConfig:
    """The build configuration a model file records, read from its header alone."""
    raw = read_header(path)
    try:
        return BuildConfig.from_dict(json.loads(raw["architecture"]))
    except (KeyError, ValueError) as error:
        raise CheckpointError(f"{path}: no usable irconstyle architecture metadata ({error})") from None
