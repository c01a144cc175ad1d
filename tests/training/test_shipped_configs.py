"""Every config in configs/ validates and names a model its options can build: a typo in a shipped recipe
fails here, not hours into someone's run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from irconstyle.models import build_model
from irconstyle.training import load_config
from irconstyle.training.trainer import check_input_sizes

CONFIGS = sorted((Path(__file__).parents[2] / "configs").rglob("*.yaml"))


def test_configs_are_found():
    assert len(CONFIGS) > 10


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: str(path.relative_to(path.parents[1])))
def test_shipped_config_validates_and_builds(path: Path):
    config = load_config(path)
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = build_model(config.model.name, **config.model.options)
    check_input_sizes(config, model)  # the trainer's own rule: raises ConfigError
