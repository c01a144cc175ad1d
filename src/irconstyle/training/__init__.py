"""Training: typed YAML configs, the joint ConStyle loop, schedule, EMA, checkpoints and DDP.

``irconstyle train CONFIG.yaml`` runs :func:`train` on :func:`load_config`'s result; see docs/training.md.
The config's schema (:mod:`irconstyle.training.schema`) imports without torch; the names below load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from irconstyle._lazy import make_lazy

if TYPE_CHECKING:
    from irconstyle.training.checkpointing import TrainingCheckpointError
    from irconstyle.training.config import config_from_dict, load_config
    from irconstyle.training.schema import ConfigError, TrainingConfig, config_yaml
    from irconstyle.training.trainer import Trainer, TrainingDivergedError, TrainingResult, train

make_lazy(__name__, {
    "ConfigError": "irconstyle.training.schema",
    "Trainer": "irconstyle.training.trainer",
    "TrainingCheckpointError": "irconstyle.training.checkpointing",
    "TrainingConfig": "irconstyle.training.schema",
    "TrainingDivergedError": "irconstyle.training.trainer",
    "TrainingResult": "irconstyle.training.trainer",
    "config_from_dict": "irconstyle.training.config",
    "config_yaml": "irconstyle.training.schema",
    "load_config": "irconstyle.training.config",
    "train": "irconstyle.training.trainer",
})

__all__ = [
    "ConfigError",
    "Trainer",
    "TrainingCheckpointError",
    "TrainingConfig",
    "TrainingDivergedError",
    "TrainingResult",
    "config_from_dict",
    "config_yaml",
    "load_config",
    "train",
]
