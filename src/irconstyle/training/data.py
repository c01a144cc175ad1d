"""The datasets a training config can name, and how the trainer builds them from the config.

``data.train.dataset`` / ``data.val.dataset`` name a factory of :data:`irconstyle.data.datasets.DATASETS`
(``paired``, ``paired_benchmark``, ``degraded``, ``degraded_benchmark``); ``options`` are its keywords.
The trainer sets the keywords that belong to the recipe: the training set gets ``patch_size``,
``augment`` and the run's ``seed`` (its samples are a function of seed, epoch and index); the validation
set is restored whole and without augmentation (its own ``seed`` option, default 0, fixes its degradations).

A training set of random draws (crops, flips, degradations) is a stream, not a list: when it holds fewer
images than one global batch (``batch_size`` × processes) its epoch visits each image several times, each
visit a separate draw, so that a few photos train on any number of processes. A set that cannot draw afresh
keeps the error of :func:`irconstyle.training.distributed.batches_per_epoch`.
"""

from __future__ import annotations

import math

from torch.utils.data import Dataset

from irconstyle.training.schema import TrainingConfig

TRAIN_MANAGED_KEYWORDS = ("patch_size", "augment", "seed")
VAL_MANAGED_KEYWORDS = ("patch_size", "augment")


def dataset_registry() -> dict[str, type]:
    """Config name -> dataset factory."""
    from irconstyle.data import datasets

    return dict(datasets.DATASETS)


def build_train_dataset(config: TrainingConfig, world_size: int = 1) -> Dataset:
    """The training set, repeated within an epoch as often as one global batch of ``world_size`` needs."""
    section = config.data.train
    factory = dataset_registry()[section.dataset]
    dataset = factory(**section.options, patch_size=section.patch_size, augment=section.augment, seed=config.seed)
    global_batch = section.batch_size * world_size
    if len(dataset) < global_batch and getattr(dataset, "draws_random_samples", False):
        dataset = dataset.repeated(math.ceil(global_batch / len(dataset)))
    return dataset


def build_val_dataset(config: TrainingConfig) -> Dataset:
    section = config.data.val
    factory = dataset_registry()[section.dataset]
    return factory(**section.options, patch_size=None, augment=False)
