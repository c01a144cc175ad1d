"""Images in and out (:mod:`.io`), synthetic degradations (:mod:`.degradations`), datasets (:mod:`.datasets`)."""

from irconstyle.data.datasets import (
    DATASETS,
    DatasetError,
    DegradedImageDataset,
    ImagePair,
    PairedImageDataset,
    PairingRule,
    benchmark_images,
    benchmark_pairs,
    degrade_folder,
    pair_folders,
)
from irconstyle.data.degradations import LEVELS, TASKS, degrade
from irconstyle.data.io import ImageReadError, image_to_tensor, read_image, tensor_to_image, write_image

__all__ = [
    "DATASETS",
    "LEVELS",
    "TASKS",
    "DatasetError",
    "DegradedImageDataset",
    "ImagePair",
    "ImageReadError",
    "PairedImageDataset",
    "PairingRule",
    "benchmark_images",
    "benchmark_pairs",
    "degrade",
    "degrade_folder",
    "image_to_tensor",
    "pair_folders",
    "read_image",
    "tensor_to_image",
    "write_image",
]
