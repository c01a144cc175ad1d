"""Training and test data: paired images, clean images degraded on the fly, and the factories configs name.

Every sample is a pure function of (seed, epoch, index): crops, flips and degradations draw from
``numpy.random.default_rng([seed, epoch, index])``, never from global random state, so a resumed run sees
exactly the samples it would have seen, whichever worker process builds them. The epoch is the one last
given to ``set_epoch`` (a DataLoader with persistent workers keeps the copy each worker received).

Samples are dicts ``{"lq": 3×H×W float32, "gt": 3×H×W float32, "name": str}`` in [0, 1]. With a
``patch_size`` (training) the 8 flips/rotations are on unless ``augment=False``; whole images (validation,
testing) are left as they are unless ``augment=True``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image, ImageFilter
from torch.utils.data import Dataset

from irconstyle.atomic import atomic_write, check_writable
from irconstyle.data.degradations import (
    DETECTION_CLASSES,
    Level,
    apply_degradation,
    degrade,
    gaussian_noise,
    jpeg_compress,
    poisson_gaussian_noise,
    quantize,
    sample_parameters,
    synthetic_depth,
)
from irconstyle.data.io import (
    float_to_image,
    image_to_float,
    image_to_tensor,
    read_image,
    write_image,
)
from irconstyle.data.layouts import (
    benchmark_folder,
    benchmark_images,
    benchmark_pairs,
    get_benchmark,
    scan_benchmark_folder,
)
from irconstyle.data.pairing import (
    ID_BEFORE_UNDERSCORE,
    SAME_STEM,
    DatasetError,
    ImagePair,
    PairingRule,
    list_images,
    pair_files,
    pair_folders,
)
from irconstyle.data.views import VIEW_SIZE, shrunk_view

__all__ = [  # the pairing and layout names are re-exported: callers find all the data tools here
    "DATASETS",
    "ID_BEFORE_UNDERSCORE",
    "SAME_STEM",
    "DatasetError",
    "DegradedImageDataset",
    "ImagePair",
    "MixedDegradationDataset",
    "PairedImageDataset",
    "PairingRule",
    "align_clean",
    "benchmark_images",
    "benchmark_pairs",
    "degrade_folder",
    "degraded",
    "degraded_benchmark",
    "depth_prior",
    "dihedral",
    "list_images",
    "mixed_degradations",
    "pair_files",
    "pair_folders",
    "paired",
    "paired_benchmark",
]


# --- the datasets -------------------------------------------------------------------------------------


def dihedral(image: np.ndarray, transform: int) -> np.ndarray:
    """One of the 8 flips/rotations of an H×W×C array: rotate by 90°·(transform mod 4), then mirror
    left-right when transform >= 4. Transform 0 is the identity."""
    if not 0 <= transform < 8:
        raise ValueError(f"dihedral transform must be in 0..7, got {transform}")
    image = np.rot90(image, transform % 4)
    return image[:, ::-1] if transform >= 4 else image


def depth_prior(image: np.ndarray, window: tuple[slice, slice], rng: np.random.Generator) -> np.ndarray:
    """The synthetic depth prior of a whole photo (computed at 256 px), cut to ``window`` at full resolution,
    so that a patch keeps its place in the scene."""
    height, width = image.shape[:2]
    scale = min(1.0, 256 / max(height, width))
    preview = image if image.dtype == np.uint8 else (image >> 8).astype(np.uint8)
    small = Image.fromarray(preview).resize((max(1, round(width * scale)), max(1, round(height * scale))))
    depth = Image.fromarray(synthetic_depth(image_to_float(np.asarray(small)), rng))
    rows, cols = window
    # The preview's size is rounded, so map the window with its actual per-axis scale (never past its edge).
    scale_x, scale_y = small.width / width, small.height / height
    box = (cols.start * scale_x, rows.start * scale_y, cols.stop * scale_x, rows.stop * scale_y)
    size = (cols.stop - cols.start, rows.stop - rows.start)
    return np.asarray(depth.resize(size, Image.Resampling.BILINEAR, box=box), dtype=np.float32)


_Seeded = TypeVar("_Seeded", bound="_SeededImageDataset")


class _SeededImageDataset(Dataset):
    """Shared machinery: per-sample generators, epochs, random windows, decoding with optional cache.

    With ``repeats`` (see :meth:`repeated`) an epoch visits every image that many times, each visit a separate
    draw (index ``i`` reads image ``i mod n`` with the generator of ``i``), as BasicSR's
    ``dataset_enlarge_ratio``: a few photos then fill the batches of any number of processes.
    """

    def __init__(self, *, patch_size: int | None, augment: bool | None, seed: int, cache: bool) -> None:
        if patch_size is not None and patch_size < 1:
            raise ValueError(f"patch_size must be >= 1 or None (whole images), got {patch_size}")
        self.patch_size, self.seed = patch_size, seed
        self.augment = patch_size is not None if augment is None else augment
        self.epoch = 0
        self.repeats = 1
        self._cache: dict[Path, np.ndarray] | None = {} if cache else None

    def _source_count(self) -> int:
        """The number of distinct images (or pairs) behind the samples."""
        raise NotImplementedError

    def __len__(self) -> int:
        return self._source_count() * self.repeats

    @property
    def draws_random_samples(self) -> bool:
        """Whether a repeated visit to an image gives a new sample (random crop, flip or degradation)."""
        return self.patch_size is not None or self.augment

    def repeated(self: _Seeded, repeats: int) -> _Seeded:
        """A copy whose epoch visits every image ``repeats`` times, each visit its own random draw."""
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        if repeats > 1 and not self.draws_random_samples:
            raise DatasetError("repeating a dataset without random crops, flips or degradations repeats samples")
        clone = copy.copy(self)
        clone.repeats = repeats
        return clone

    def set_epoch(self, epoch: int) -> None:
        """Draw the next samples' randomness for ``epoch``."""
        self.epoch = epoch

    def _resolve(self, index: int) -> tuple[int, np.random.Generator]:
        """The image (or pair) behind sample ``index``, and the sample's own generator."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        index %= len(self)
        return index % self._source_count(), np.random.default_rng([self.seed, self.epoch, index])

    def _read(self, path: Path) -> np.ndarray:
        if self._cache is None:
            return read_image(path)
        if path not in self._cache:
            self._cache[path] = read_image(path)
        return self._cache[path]

    def _window(self, shape: tuple[int, ...], margin: int, rng: np.random.Generator, path: Path):
        """A random patch window grown by up to ``margin`` context pixels on each side (as far as the image
        allows); returns the (row, column) slices and the margin actually used."""
        height, width = shape[:2]
        if self.patch_size is None:
            return (slice(0, height), slice(0, width)), 0
        if height < self.patch_size or width < self.patch_size:
            raise DatasetError(f"{path}: image {width}×{height} is smaller than the {self.patch_size} px patch")
        margin = max(0, min(margin, (height - self.patch_size) // 2, (width - self.patch_size) // 2))
        size = self.patch_size + 2 * margin
        top = int(rng.integers(height - size + 1))
        left = int(rng.integers(width - size + 1))
        return (slice(top, top + size), slice(left, left + size)), margin

    def _transform(self, rng: np.random.Generator) -> int:
        return int(rng.integers(8)) if self.augment else 0


class PairedImageDataset(_SeededImageDataset):
    """Degraded/clean pairs (see :func:`pair_folders`, :func:`benchmark_pairs`), with aligned random
    crops and the 8 dihedral augmentations when training.

    ``center_crop_gt`` trims a larger clean image to its degraded image's size (RESIDE SOTS indoor's
    clean images carry a 10 px border the hazy ones lack); any other size mismatch is an error.
    """

    def __init__(
        self,
        pairs: Sequence[ImagePair],
        *,
        patch_size: int | None = None,
        augment: bool | None = None,
        seed: int = 0,
        cache: bool = False,
        center_crop_gt: bool = False,
    ) -> None:
        super().__init__(patch_size=patch_size, augment=augment, seed=seed, cache=cache)
        if not pairs:
            raise DatasetError("no image pairs given")
        self.pairs = list(pairs)
        self.center_crop_gt = center_crop_gt

    def _source_count(self) -> int:
        return len(self.pairs)

    def _aligned(self, lq: np.ndarray, gt: np.ndarray, pair: ImagePair) -> np.ndarray:
        return align_clean(gt, lq.shape, pair, center_crop=self.center_crop_gt)

    def verify(self) -> None:
        """Check every pair's sizes from the file headers (fast: no decoding); one error lists all."""
        problems = []
        for pair in self.pairs:
            with Image.open(pair.lq) as lq, Image.open(pair.gt) as gt:
                lq_size, gt_size = lq.size, gt.size
            crop_ok = self.center_crop_gt and gt_size[0] >= lq_size[0] and gt_size[1] >= lq_size[1]
            if lq_size != gt_size and not crop_ok:
                problems.append(f"{pair.lq} {lq_size[0]}×{lq_size[1]} vs {pair.gt} {gt_size[0]}×{gt_size[1]}")
        if problems:
            raise DatasetError(f"{len(problems)} size mismatch(es): " + "; ".join(problems[:5]))

    def __getitem__(self, index: int) -> dict[str, Any]:
        index, rng = self._resolve(index)
        pair = self.pairs[index]
        lq = self._read(pair.lq)
        gt = self._aligned(lq, self._read(pair.gt), pair)
        window, _ = self._window(lq.shape, 0, rng, pair.lq)
        transform = self._transform(rng)
        return {
            "lq": image_to_tensor(dihedral(lq[window], transform)),
            "gt": image_to_tensor(dihedral(gt[window], transform)),
            "name": pair.lq.stem,
        }


def align_clean(gt: np.ndarray, lq_shape: tuple[int, ...], pair: ImagePair, *, center_crop: bool) -> np.ndarray:
    """The clean image of ``pair`` at its degraded image's size: as it is, or centre-cropped to it where
    ``center_crop`` allows and the clean image is larger; any other size mismatch is an error naming both files."""
    if gt.shape == tuple(lq_shape):
        return gt
    (lq_h, lq_w), (gt_h, gt_w) = lq_shape[:2], gt.shape[:2]
    if center_crop and gt_h >= lq_h and gt_w >= lq_w:
        top, left = (gt_h - lq_h) // 2, (gt_w - lq_w) // 2
        return gt[top : top + lq_h, left : left + lq_w]
    raise DatasetError(f"size mismatch: {pair.lq} is {lq_w}×{lq_h} but {pair.gt} is {gt_w}×{gt_h}")


class DegradedImageDataset(_SeededImageDataset):
    """Clean images degraded on the fly for ``task`` at ``level`` (a name, a list of names, or explicit
    parameters with fixed values, ranges or lists; see :mod:`irconstyle.data.degradations`), drawn afresh
    for every sample, e.g. the denoising σ per patch.

    Order per sample: crop (with ``context`` extra pixels around the patch where the image allows, so blur
    at the patch border sees real neighbours), flip/rotate, degrade, cut the context away. Augmenting
    before degrading keeps rain falling downwards. For dehazing the synthetic depth prior is computed on
    the whole photo (at 256 px) and cropped with the patch, so a patch keeps its place in the scene.
    Denoising inputs are not clipped (as in the benchmarks).
    """

    def __init__(
        self,
        images: Sequence[str | os.PathLike],
        task: str,
        level: Level = "medium",
        *,
        patch_size: int | None = None,
        augment: bool | None = None,
        seed: int = 0,
        cache: bool = False,
        context: int = 32,
    ) -> None:
        super().__init__(patch_size=patch_size, augment=augment, seed=seed, cache=cache)
        if not images:
            raise DatasetError("no clean images given")
        sample_parameters(task, level, 0)  # fail now, not in a worker, on a bad task, level or parameter
        self.images = [Path(path) for path in images]
        self.task, self.level, self.context = task, level, context

    def _source_count(self) -> int:
        return len(self.images)

    @property
    def draws_random_samples(self) -> bool:
        return True  # every visit draws fresh degradation parameters and noise

    def __getitem__(self, index: int) -> dict[str, Any]:
        index, rng = self._resolve(index)
        path = self.images[index]
        image = self._read(path)
        window, margin = self._window(image.shape, self.context, rng, path)
        transform = self._transform(rng)
        clean = np.ascontiguousarray(dihedral(image_to_float(image[window]), transform))
        parameters = sample_parameters(self.task, self.level, rng)
        depth = None
        if self.task == "dehaze":
            depth = dihedral(depth_prior(image, window, rng), transform) * parameters["max_depth"]
        degraded = apply_degradation(clean, self.task, parameters, rng, depth=depth)
        inner = (slice(margin, clean.shape[0] - margin), slice(margin, clean.shape[1] - margin))
        return {
            "lq": image_to_tensor(degraded[inner]),
            "gt": image_to_tensor(clean[inner]),
            "name": path.stem,
        }


class MixedDegradationDataset(_SeededImageDataset):
    """Labelled views of every class of ``classes`` at every level, drawn per sample, with their clean views.

    What a degradation classifier and ConStyle v2's prompter train on (the labels), and, as (degraded, clean)
    pairs, an all-in-one restorer (ConStyle v2's "Mix Degradations").

    Each sample picks a class uniformly (``none`` or a task of :mod:`irconstyle.data.degradations`) and a view
    (see :mod:`irconstyle.data.views`): with probability ``native_fraction`` a ``patch_size`` crop degraded at
    the photo's resolution (with ``context`` pixels around it, as :class:`DegradedImageDataset`), otherwise the
    whole photo resized to a random longer side in ``global_sides``, degraded there and shrunk to the view.
    Levels: a named level or, for noise, σ uniform in ``sigma_range``; blur is motion or defocus; noise is
    Gaussian or, a quarter of the time, signal-dependent (Poisson–Gaussian). ``none`` is the clean photo as
    users have it: untouched, JPEG-compressed (quality 15–95), resampled (×0.65–1.3, any filter) or sharpened,
    with at most σ 1.5 of sensor noise. Any degraded view is JPEG-compressed with probability
    ``jpeg_fraction`` (quality 40–95), so that JPEG artefacts alone never tell a class; every photo is clipped
    and stored in 8 bits, as image files are, and so is every view (as :func:`irconstyle.detect.detect` rounds
    its views).

    Samples: ``{"lq": 3×P×P, "gt": 3×P×P, "label": class index, "level": σ (0–255) for native noise views
    else NaN, "native": bool, "name": str}``. ``gt`` is the same view of the photo before degrading (a shrunk
    view rounded to 8 bits as ``lq`` is); for ``none`` it is the view itself, since such a photo needs no
    restoration (its JPEG, resampling and sensor noise are what photos that need none look like).
    """

    def __init__(
        self,
        images: Sequence[str | os.PathLike],
        *,
        classes: Sequence[str] = DETECTION_CLASSES,
        patch_size: int | None = VIEW_SIZE,
        augment: bool | None = None,
        seed: int = 0,
        cache: bool = False,
        context: int = 40,
        native_fraction: float = 0.75,
        global_sides: tuple[int, int] = (192, 384),
        sigma_range: tuple[float, float] = (5.0, 60.0),
        jpeg_fraction: float = 0.3,
    ) -> None:
        super().__init__(patch_size=patch_size or VIEW_SIZE, augment=augment, seed=seed, cache=cache)
        if not images:
            raise DatasetError("no clean images given")
        unknown = [name for name in classes if name not in DETECTION_CLASSES]
        if unknown or len(set(classes)) != len(classes) or len(classes) < 2:
            raise DatasetError(
                f"classes must be two or more distinct names of {', '.join(DETECTION_CLASSES)}, got {list(classes)}"
            )
        for name, value in (("native_fraction", native_fraction), ("jpeg_fraction", jpeg_fraction)):
            if not 0.0 <= value <= 1.0:
                raise DatasetError(f"{name} must be in [0, 1], got {value}")
        if not 0 < global_sides[0] <= global_sides[1]:
            raise DatasetError(f"global_sides must be 0 < low <= high, got {list(global_sides)}")
        if not 0 <= sigma_range[0] <= sigma_range[1]:
            raise DatasetError(f"sigma_range must be 0 <= low <= high, got {list(sigma_range)}")
        self.images = [Path(path) for path in images]
        self.classes = tuple(classes)
        self.context, self.native_fraction, self.jpeg_fraction = context, native_fraction, jpeg_fraction
        self.global_sides = (int(global_sides[0]), int(global_sides[1]))
        self.sigma_range = (float(sigma_range[0]), float(sigma_range[1]))

    def _source_count(self) -> int:
        return len(self.images)

    @property
    def draws_random_samples(self) -> bool:
        return True

    def _shrunk_photo(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The whole photo as a float image whose longer side is drawn from ``global_sides`` (never enlarged)."""
        height, width = image.shape[:2]
        side = min(int(rng.integers(self.global_sides[0], self.global_sides[1] + 1)), max(height, width))
        scale = side / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        preview = image if image.dtype == np.uint8 else (image >> 8).astype(np.uint8)
        return image_to_float(np.asarray(Image.fromarray(preview).resize(size, Image.Resampling.LANCZOS)))

    def _clean_variant(self, clean: np.ndarray, native: bool, rng: np.random.Generator) -> np.ndarray:
        """A photo that needs no restoration, as users have them (see the class docstring)."""
        choice = rng.random()
        image = clean
        if native and choice < 0.4:
            height, width = clean.shape[:2]
            factor = max(float(rng.uniform(0.65, 1.3)), self.patch_size / min(height, width))
            filters = (Image.Resampling.BICUBIC, Image.Resampling.LANCZOS, Image.Resampling.BILINEAR,
                       Image.Resampling.BOX)
            resample = filters[int(rng.integers(len(filters)))]
            size = (max(self.patch_size, round(width * factor)), max(self.patch_size, round(height * factor)))
            pixels = Image.fromarray(float_to_image(clean, 8)).resize(size, resample)
            if rng.random() < 0.35:
                pixels = pixels.filter(ImageFilter.UnsharpMask(radius=float(rng.uniform(0.5, 2.0)),
                                                               percent=int(rng.integers(50, 150)), threshold=2))
            image = image_to_float(np.asarray(pixels))
        if rng.random() < 0.3:
            image = gaussian_noise(image, float(rng.uniform(0.0, 1.5)), rng, clip=True)
        if choice >= 0.4 and choice < 0.75 or (choice < 0.4 and rng.random() < 0.4):
            image = jpeg_compress(image, int(rng.integers(15, 96)))
        return image

    def _global_view(self, image: np.ndarray) -> torch.Tensor:
        """The whole (shrunk) photo as a view, rounded to 8 bits."""
        return torch.round(shrunk_view(image_to_tensor(image), size=self.patch_size) * 255.0) / 255.0

    def _degraded(
        self, task: str, clean: np.ndarray, image: np.ndarray, window, transform: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, float]:
        """``clean`` degraded for ``task`` at a random level, and the noise σ behind it (NaN for other tasks)."""
        level: dict[str, Any] = {"level": ["low", "medium", "high"]}
        if task == "denoise" and rng.random() < 0.5:
            level["sigma"] = self.sigma_range
        if task == "deblur":
            level["kind"] = ["motion", "defocus"]
        parameters = sample_parameters(task, level, rng)
        if task == "denoise" and rng.random() < 0.25:
            sigma = parameters["sigma"] / 255.0
            noisy = poisson_gaussian_noise(clean, 0.5 / max(sigma, 1e-3) ** 2, 0.3 * parameters["sigma"], rng)
            return noisy, float(np.std(noisy - clean) * 255.0)
        depth = None
        if task == "dehaze":
            prior = depth_prior(image, window, rng) if window is not None else synthetic_depth(clean, rng)
            depth = (dihedral(prior, transform) if window is not None else prior) * parameters["max_depth"]
        degraded = apply_degradation(clean, task, parameters, rng, depth=depth)
        return degraded, float(parameters["sigma"]) if task == "denoise" else math.nan

    def __getitem__(self, index: int) -> dict[str, Any]:
        index, rng = self._resolve(index)
        path = self.images[index]
        image = self._read(path)
        label = int(rng.integers(len(self.classes)))
        task = self.classes[label]
        native = bool(rng.random() < self.native_fraction)
        transform = self._transform(rng)
        if native:
            window, margin = self._window(image.shape, self.context, rng, path)
            clean = np.ascontiguousarray(dihedral(image_to_float(image[window]), transform))
        else:
            window, margin = None, 0
            clean = np.ascontiguousarray(dihedral(self._shrunk_photo(image, rng), transform))
        if task == "none":
            degraded, sigma = self._clean_variant(clean, native, rng), math.nan
        else:
            degraded, sigma = self._degraded(task, clean, image, window, transform, rng)
            if rng.random() < self.jpeg_fraction:
                degraded = jpeg_compress(np.clip(degraded, 0.0, 1.0), int(rng.integers(40, 96)))
        degraded = quantize(degraded, 8)
        if native:
            height, width = degraded.shape[:2]
            top = margin if degraded.shape[:2] == clean.shape[:2] else (height - self.patch_size) // 2
            left = margin if degraded.shape[:2] == clean.shape[:2] else (width - self.patch_size) // 2
            crop = (slice(top, top + self.patch_size), slice(left, left + self.patch_size))
            view = image_to_tensor(degraded[crop])
            target = view.clone() if task == "none" else image_to_tensor(clean[crop])  # degrading kept the size
        else:
            view = self._global_view(degraded)
            target = view.clone() if task == "none" else self._global_view(clean)
        return {
            "lq": view,
            "gt": target,
            "label": label,
            "level": np.float32(sigma if native else math.nan),
            "native": native,
            "name": path.stem,
        }


# --- writing a synthetic paired dataset --------------------------------------------------------------


def degrade_folder(
    in_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    task: str,
    level: Level = "medium",
    *,
    seed: int = 0,
    overwrite: bool = False,
    progress: Callable[[int, int, Path], None] | None = None,
) -> dict[str, Any]:
    """Degrade every image of ``in_dir`` into a paired dataset: ``out_dir/lq/<stem>.png`` (degraded),
    ``out_dir/gt/<stem>.png`` (the clean image as decoded: orientation applied, lossless, same bit depth)
    and ``out_dir/degradations.json`` (task, level, seed and each image's drawn parameters).

    Each image's randomness depends on (seed, file stem) only, so adding files changes no other pair.
    The result reads back with ``paired(lq_dir=out_dir/"lq", gt_dir=out_dir/"gt")``. Written files are
    clipped and quantised; train denoisers on the fly (:class:`DegradedImageDataset`) for the unclipped
    noise of the benchmarks. ``progress(done, total, path)`` is called after each image.
    """
    images = list_images(in_dir)
    sample_parameters(task, level, 0)  # a bad task, level or parameter fails before anything is written
    by_stem: dict[str, Path] = {}
    for path in images:
        if path.stem in by_stem:
            raise DatasetError(f"{by_stem[path.stem]} and {path} would both be written as {path.stem}.png")
        by_stem[path.stem] = path
    out_dir = Path(out_dir)
    lq_dir, gt_dir = out_dir / "lq", out_dir / "gt"
    for folder in (lq_dir, gt_dir):
        if not overwrite and folder.is_dir() and any(folder.iterdir()):
            raise DatasetError(f"{folder} is not empty; choose another output folder or allow overwriting")
    try:
        check_writable(out_dir / "degradations.json")
    except ValueError as error:
        raise DatasetError(str(error)) from None
    records = {}
    for done, path in enumerate(images, start=1):
        pixels = read_image(path)
        rng = np.random.default_rng([seed, zlib.crc32(path.stem.encode())])
        result = degrade(image_to_float(pixels), task, level, rng)
        bit_depth = 16 if pixels.dtype == np.uint16 else 8
        write_image(lq_dir / f"{path.stem}.png", float_to_image(result.image, bit_depth))
        write_image(gt_dir / f"{path.stem}.png", pixels)
        records[path.stem] = {"source": path.name, **result.parameters}
        if progress is not None:
            progress(done, len(images), path)
    manifest = {"task": task, "level": level, "seed": seed, "images": records}
    with atomic_write(out_dir / "degradations.json") as temporary:
        temporary.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


# --- by name, for configs ------------------------------------------------------------------------------

_PAIRINGS = {"same_stem": SAME_STEM, "id_before_underscore": ID_BEFORE_UNDERSCORE}


def paired(
    *,
    lq_dir: str | os.PathLike | None = None,
    gt_dir: str | os.PathLike | None = None,
    pairing: str | None = None,
    root: str | os.PathLike | None = None,
    layout: str | None = None,
    patch_size: int | None = None,
    augment: bool | None = None,
    seed: int = 0,
    cache: bool = False,
    center_crop_gt: bool | None = None,
) -> PairedImageDataset:
    """Degraded/clean pairs from ``lq_dir`` and ``gt_dir`` paired by ``pairing`` (``same_stem``, the default, or
    ``id_before_underscore``), or from a dataset folder ``root`` as distributed, in the ``layout`` named or
    detected (:mod:`irconstyle.data.layouts`, as ``irconstyle eval --root`` reads it). ``center_crop_gt``
    defaults to what the layout asks (RESIDE's larger clean images), else off."""
    if root is not None:
        given = [name for name, value in (("lq_dir", lq_dir), ("gt_dir", gt_dir), ("pairing", pairing)) if value]
        if given:
            raise DatasetError(f"root {root}: a dataset folder pairs its own files; drop {', '.join(given)}")
        folder = scan_benchmark_folder(root, layout)
        pairs = folder.pairs()
        crop = folder.layout.center_crop_gt if center_crop_gt is None else center_crop_gt
    else:
        if lq_dir is None or gt_dir is None:
            raise DatasetError("a paired dataset needs lq_dir and gt_dir, or root (a dataset folder as distributed)")
        if layout is not None:
            raise DatasetError(f"layout {layout!r} names the layout of a root folder; lq_dir and gt_dir pair by "
                               "pairing")
        pairing = pairing or "same_stem"
        if pairing not in _PAIRINGS:
            raise DatasetError(f"unknown pairing {pairing!r}; choose one of {', '.join(_PAIRINGS)}")
        pairs, crop = pair_folders(lq_dir, gt_dir, _PAIRINGS[pairing]), bool(center_crop_gt)
    return PairedImageDataset(pairs, patch_size=patch_size, augment=augment, seed=seed, cache=cache,
                              center_crop_gt=crop)


def paired_benchmark(
    *,
    benchmark: str,
    root: str | os.PathLike,
    patch_size: int | None = None,
    augment: bool | None = None,
    seed: int = 0,
    cache: bool = False,
    center_crop_gt: bool | None = None,
) -> PairedImageDataset:
    """A paired public benchmark (``rain13k``, ``rain100h``, ``ots``, ``gopro``, …) in any of the layouts it is
    distributed in; ``center_crop_gt`` as for :func:`paired`."""
    if not get_benchmark(benchmark).paired:
        raise DatasetError(f"{benchmark} has clean images only; use degraded_benchmark")
    folder = benchmark_folder(benchmark, root)
    return PairedImageDataset(
        folder.pairs(), patch_size=patch_size, augment=augment, seed=seed, cache=cache,
        center_crop_gt=folder.layout.center_crop_gt if center_crop_gt is None else center_crop_gt,
    )


def degraded(
    *,
    clean_dirs: str | os.PathLike | Sequence[str | os.PathLike],
    task: str,
    level: Level = "medium",
    patch_size: int | None = None,
    augment: bool | None = None,
    seed: int = 0,
    cache: bool = False,
    context: int = 32,
) -> DegradedImageDataset:
    """Clean images from one or more folders (subfolders included), degraded on the fly."""
    folders = [clean_dirs] if isinstance(clean_dirs, (str, os.PathLike)) else list(clean_dirs)
    images = [path for folder in folders for path in list_images(folder, recursive=True)]
    return DegradedImageDataset(
        images, task, level, patch_size=patch_size, augment=augment, seed=seed, cache=cache, context=context
    )


def degraded_benchmark(
    *,
    benchmark: str,
    root: str | os.PathLike,
    task: str,
    level: Level = "medium",
    patch_size: int | None = None,
    augment: bool | None = None,
    seed: int = 0,
    cache: bool = False,
    context: int = 32,
) -> DegradedImageDataset:
    """A clean-only public set (``dfwb``, ``cbsd68``, ``urban100``, …) degraded on the fly."""
    return DegradedImageDataset(
        benchmark_images(benchmark, root), task, level,
        patch_size=patch_size, augment=augment, seed=seed, cache=cache, context=context,
    )


def mixed_degradations(
    *,
    clean_dirs: str | os.PathLike | Sequence[str | os.PathLike],
    classes: Sequence[str] = DETECTION_CLASSES,
    patch_size: int | None = VIEW_SIZE,
    augment: bool | None = None,
    seed: int = 0,
    cache: bool = False,
    context: int = 40,
    native_fraction: float = 0.75,
    global_sides: Sequence[int] = (192, 384),
    sigma_range: Sequence[float] = (5.0, 60.0),
    jpeg_fraction: float = 0.3,
) -> MixedDegradationDataset:
    """Clean photos from one or more folders as labelled views of every degradation with their clean views: the
    data of ``detect`` and ``prompter`` runs, and (degraded, clean) pairs for all-in-one restoration."""
    folders = [clean_dirs] if isinstance(clean_dirs, (str, os.PathLike)) else list(clean_dirs)
    images = [path for folder in folders for path in list_images(folder, recursive=True)]
    return MixedDegradationDataset(
        images, classes=classes, patch_size=patch_size, augment=augment, seed=seed, cache=cache, context=context,
        native_fraction=native_fraction, global_sides=tuple(global_sides), sigma_range=tuple(sigma_range),
        jpeg_fraction=jpeg_fraction,
    )


DATASETS = {
    "paired": paired,
    "paired_benchmark": paired_benchmark,
    "degraded": degraded,
    "degraded_benchmark": degraded_benchmark,
    "mixed_degradations": mixed_degradations,
}
"""Names a training config's ``data.train.dataset`` / ``data.val.dataset`` can use -> keyword factories."""
