"""Every config in configs/ validates and names a model its options can build: a typo in a shipped recipe
fails here, not hours into someone's run. And each resolves to exactly what scripts/snapshot_configs.py recorded,
so that refactoring the configs (bases, defaults left out) cannot change what any of them trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from training_setup import CONFIG_DIR, RESOLVED_CONFIGS, shipped_configs

from irconstyle.models import build_model
from irconstyle.training import load_config
from irconstyle.training.trainer import check_input_sizes

CONFIGS = shipped_configs()
RESOLVED = json.loads(RESOLVED_CONFIGS.read_text())


def _name(path: Path) -> str:
    return path.relative_to(CONFIG_DIR).as_posix()


def test_configs_are_found_and_each_has_a_snapshot():
    assert len(CONFIGS) > 10
    assert sorted(map(_name, CONFIGS)) == sorted(RESOLVED), "rerun scripts/snapshot_configs.py for a new config"


@pytest.mark.parametrize("path", CONFIGS, ids=_name)
def test_shipped_config_validates_and_builds(path: Path):
    config = load_config(path)
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = build_model(config.model.name, **config.model.options)
    check_input_sizes(config, model)  # the trainer's own rule: raises ConfigError


@pytest.mark.parametrize("path", CONFIGS, ids=_name)
def test_shipped_config_resolves_to_its_snapshot(path: Path):
    assert load_config(path).to_dict() == RESOLVED[_name(path)]
