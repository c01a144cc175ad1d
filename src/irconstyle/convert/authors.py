"""The authors' ``.pth`` checkpoints (and any of ours saved with ``torch.save``) -> irconstyle models.

The architecture and its hyper-parameters are read from the checkpoint's keys and shapes
(:mod:`irconstyle.models.detection`); naming the authors' class and keywords instead is still accepted.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from irconstyle.models import official
from irconstyle.models.checkpoint import CheckpointError, load_checkpoint, load_strict, read_authors_checkpoint
from irconstyle.models.detection import DetectionError, detect_architecture, guessed_options
from irconstyle.zoo.descriptor import ModelDescriptor, describe


def convert_authors_checkpoint(
    path: str | os.PathLike, architecture: str | None = None, **official_kwargs: Any
) -> ModelDescriptor:
    """The model a ``.pth`` checkpoint holds, its weights loaded strictly, in eval mode.

    ``architecture`` (the authors' class name, e.g. ``ConStyleNAFNet``) and their constructor keywords build
    the model as named; without them the architecture is detected from the checkpoint.
    """
    path = Path(path)
    if architecture is not None:
        config = official.build_config(architecture, **official_kwargs)
        model = config.build()
        load_checkpoint(model, path)
        return describe(model.eval(), config)
    if official_kwargs:
        raise ValueError("constructor keywords need the architecture they belong to")
    try:
        config, state = detect_architecture(read_authors_checkpoint(path))
    except DetectionError as error:
        raise CheckpointError(f"{path}: {error}") from None
    unread = [name for name in guessed_options(config.architecture) if name in config.options]
    if unread:
        assumed = ", ".join(f"{name}={config.options[name]!r}" for name in unread)
        warnings.warn(
            f"{path}: {config.architecture}'s {', '.join(unread)} cannot be read from the weights and were assumed "
            f"({assumed}); if the model was built otherwise its outputs differ: name the architecture and pass them "
            "(irconstyle convert ARCHITECTURE SOURCE OUTPUT --arg NAME=VALUE)",
            stacklevel=2,
        )
    model = config.build()
    load_strict(model, state, path)
    return describe(model.eval(), config)
