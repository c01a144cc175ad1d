"""The datasets a training config can name, and how the trainer builds them from the config.

``data.train.dataset`` / ``data.val.dataset`` name a factory of :data:`irconstyle.data.datasets.DATASETS`
(``paired``, ``paired_benchmark``, ``degraded``, ``degraded_benchmark``); ``options`` are its keywords.
The trainer sets the keywords that belong to the recipe: the training set gets ``patch_size``,
``augment`` and the run's ``seed`` (its samples are a function of seed, epoch and index); the validation
set is restored whole and without augmentation (its own ``seed`` option, default 0, fixes its degradations).
"""

from __future__ import annotations

from torch.utils.data import Dataset

from irconstyle.training.config import TrainingConfig

TRAIN_MANAGED_KEYWORDS = ("patch_size", "augment", "seed")
VAL_MANAGED_KEYWORDS = ("patch_size", "augment")


def dataset_registry() -> dict[str, type]:
    """Config name -> dataset factory."""
    from irconstyle.data import datasets

    return dict(datasets.DATASETS)


def build_train_dataset(config: TrainingConfig) -> Dataset:
    section = config.data.train
    factory = dataset_registry()[section.dataset]
    return factory(**section.options, patch_size=section.patch_size, augment=section.augment, seed=config.seed)


def build_val_dataset(config: TrainingConfig) -> Dataset:
    section = config.data.val
    factory = dataset_registry()[section.dataset]
    return factory(**section.options, patch_size=None, augment=False)
