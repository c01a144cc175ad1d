"""Training: typed YAML configs, the joint ConStyle loop, schedule, EMA, checkpoints and DDP.

``irconstyle train CONFIG.yaml`` runs :func:`train` on :func:`load_config`'s result; see docs/training.md.
"""

from irconstyle.training.checkpointing import TrainingCheckpointError
from irconstyle.training.config import ConfigError, TrainingConfig, config_from_dict, load_config
from irconstyle.training.trainer import Trainer, TrainingDivergedError, TrainingResult, train

__all__ = [
    "ConfigError",
    "Trainer",
    "TrainingCheckpointError",
    "TrainingConfig",
    "TrainingDivergedError",
    "TrainingResult",
    "config_from_dict",
    "load_config",
    "train",
]
