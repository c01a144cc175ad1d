"""The authors' ``.pth`` checkpoints -> irconstyle models (their class and keyword names, their key layout)."""

from __future__ import annotations

import os
from typing import Any

from irconstyle.models import official
from irconstyle.models.checkpoint import load_checkpoint
from irconstyle.zoo.descriptor import ModelDescriptor, describe


def convert_authors_checkpoint(path: str | os.PathLike, architecture: str, **official_kwargs: Any) -> ModelDescriptor:
    """The model an authors' checkpoint holds, built from their class name ``architecture`` and constructor
    keywords, with the checkpoint's weights loaded strictly."""
    config = official.build_config(architecture, **official_kwargs)
    model = config.build()
    load_checkpoint(model, path)
    return describe(model.eval(), config)
