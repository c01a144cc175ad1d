"""Scoring a model on a set of images: per-image and mean PSNR/SSIM (RGB and Y) under a stated protocol, and
presets that score every test set of one task under a root folder, as the authors' test configurations do."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch
from torch import nn

from irconstyle.atomic import atomic_write
from irconstyle.data.datasets import DatasetError, ImagePair, align_clean, list_images, pair_folders
from irconstyle.data.degradations import TASKS as DEGRADATION_TASKS
from irconstyle.data.degradations import degrade
from irconstyle.data.io import float_to_image, image_to_float, image_to_tensor, read_image, tensor_to_image
from irconstyle.data.layouts import BenchmarkImage, scan_benchmark_folder
from irconstyle.inference import Tile, resolve_tile, restore_tensor
from irconstyle.metrics import RESTORATION_METRICS, Protocol, get_protocol, psnr, restoration_scores
from irconstyle.models.constyle import pad_to_multiple
from irconstyle.zoo.descriptor import ModelDescriptor, describe


@dataclass(frozen=True)
class ImageScore:
    name: str
    psnr_rgb: float
    ssim_rgb: float
    psnr_y: float
    ssim_y: float
    input_psnr_rgb: float  # the degraded input against the reference: what "doing nothing" scores


@dataclass(frozen=True)
class EvaluationReport:
    """Per-image scores, their means and the one-line description of how they were computed."""

    scores: list[ImageScore]
    description: str

    def mean(self) -> dict[str, float]:
        fields = [*RESTORATION_METRICS, "input_psnr_rgb"]
        return {name: float(np.mean([getattr(score, name) for score in self.scores])) for name in fields}

    def write_csv(self, path: str | os.PathLike) -> None:
        with atomic_write(Path(path)) as temporary, open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(asdict(self.scores[0])))
            writer.writeheader()
            writer.writerows(asdict(score) for score in self.scores)
            writer.writerow({"name": "mean", **self.mean()})


ScoreOn = Literal["cropped", "padded"]
SCORE_ON: tuple[str, ...] = get_args(ScoreOn)


def _score(name: str, restored: np.ndarray, degraded: np.ndarray, reference: np.ndarray) -> ImageScore:
    """Scores of uint8 images (data range 255)."""
    return ImageScore(
        name=name,
        **restoration_scores(restored, reference, data_range=255.0),
        input_psnr_rgb=psnr(degraded, reference, data_range=255.0),
    )


def parse_degradation(text: str, *, quantize_bits: int | None = None) -> tuple[str, str | dict]:
    """``"TASK:LEVEL"`` -> (task, level): a named level (``derain:high``) or, for denoising, σ (``denoise:25``).

    ``quantize_bits``: the degraded inputs are stored at that bit depth, as saved images are (the model cards
    use 8); by default they stay float.
    """
    task, separator, level = text.partition(":")
    if not separator or not level:
        raise ValueError(f"degradation {text!r} is not TASK:LEVEL, e.g. denoise:25 or derain:high")
    if task not in DEGRADATION_TASKS:
        raise ValueError(f"degradation {text!r}: unknown task {task!r}; known: {', '.join(DEGRADATION_TASKS)}")
    try:
        sigma = float(level)
    except ValueError:
        return (task, level) if quantize_bits is None else (task, {"level": level, "quantize_bits": quantize_bits})
    if task != "denoise":
        raise ValueError(f"a numeric level is a noise σ, only for denoise; use low/medium/high for {task}")
    return task, {"sigma": sigma} if quantize_bits is None else {"sigma": sigma, "quantize_bits": quantize_bits}


def _uint8(image: np.ndarray) -> np.ndarray:
    return image if image.dtype == np.uint8 else float_to_image(image_to_float(image), 8)


def _pad(image: np.ndarray, multiple: int) -> np.ndarray:
    """An H×W×3 array padded at the bottom/right to multiples of ``multiple`` the way the models pad their input
    (reflection), in its own dtype."""
    tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float64))[None]
    padded, _ = pad_to_multiple(tensor, multiple)
    return padded[0].numpy().transpose(1, 2, 0).astype(image.dtype)


def _images(
    gt_dir: str | os.PathLike | None,
    lq_dir: str | os.PathLike | None,
    root: str | os.PathLike | None,
    layout: str | None,
) -> tuple[list[BenchmarkImage], str, bool]:
    """The images to score, where they come from (for the protocol line) and whether a larger clean image is
    centre-cropped to its degraded one."""
    if (root is None) == (gt_dir is None):
        raise ValueError("give either gt_dir (with lq_dir for paired folders) or a benchmark root folder")
    if root is not None:
        if lq_dir is not None:
            raise ValueError("lq_dir pairs with gt_dir; a benchmark root holds its own degraded images")
        folder = scan_benchmark_folder(root, layout)
        return folder.images, f"{root} ({folder.layout.name} layout)", folder.layout.center_crop_gt
    if layout is not None:
        raise ValueError("layout names the layout of a benchmark root folder; gt_dir and lq_dir pair by file stem")
    if lq_dir is None:
        return [BenchmarkImage(path.name, path) for path in list_images(gt_dir)], str(gt_dir), False
    pairs = pair_folders(lq_dir, gt_dir)
    return [BenchmarkImage(pair.lq.name, pair.gt, pair.lq) for pair in pairs], str(lq_dir), False


def evaluate(
    model: ModelDescriptor | nn.Module,
    *,
    gt_dir: str | os.PathLike | None = None,
    lq_dir: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    layout: str | None = None,
    degradation: tuple[str, str | dict] | None = None,
    protocol: Protocol | None = None,
    score_on: ScoreOn = "cropped",
    seed: int = 0,
    tile: Tile = "auto",
    self_ensemble: bool = False,
    precision: str = "fp32",
    device: str | torch.device = "cpu",
    on_image: Callable[[ImageScore], None] | None = None,
) -> EvaluationReport:
    """Restore and score every image, with inputs from one of three sources, tiled as ``model``'s descriptor
    says for ``tile="auto"``.

    The images: ``gt_dir`` (with ``lq_dir``, degraded images paired by file stem), or a benchmark ``root`` as
    distributed, in the ``layout`` named or detected (:mod:`irconstyle.data.layouts`). The inputs: the paired
    degraded images; ``degradation=(task, level)``, each clean image degraded by
    :func:`irconstyle.data.degradations.degrade`, seeded by ``seed`` + its index; or a noise ``protocol``
    (e.g. ``cbsd68-sigma25``): its own float64, unclipped noise, as in the published test scripts.

    ``score_on="cropped"`` scores the restored image at the original size. ``"padded"`` scores as the
    authors' test scripts did: the degraded input and the clean reference are reflect-padded at the
    bottom/right to multiples of the model's size multiple, and the whole padded output is scored against the
    padded reference (the numbers differ a little). Restored images are rounded to uint8 before scoring
    (BasicSR convention); metrics use crop border 0.
    """
    if score_on not in SCORE_ON:
        raise ValueError(f"score_on must be one of {', '.join(SCORE_ON)}, got {score_on!r}")
    images, source, center_crop = _images(gt_dir, lq_dir, root, layout)
    paired = any(image.lq is not None for image in images)
    noise = bool(protocol and protocol.noise_sigma)
    if paired + (degradation is not None) + noise != 1:
        raise ValueError(
            f"give exactly one input source for {source}: degraded images (lq_dir, or a root holding pairs), "
            "a degradation, or a noise protocol"
        )
    model = describe(model).to(device).eval()
    multiple = model.size_multiple
    scores, tiles_used = [], set()
    for index, image in enumerate(images):
        reference = _uint8(read_image(image.gt))
        if image.lq is not None:
            degraded = image_to_float(read_image(image.lq))
            reference = align_clean(reference, degraded.shape, ImagePair(image.lq, image.gt), center_crop=center_crop)
        elif degradation is not None:
            degraded = degrade(image_to_float(reference), degradation[0], degradation[1], seed + index).image
        else:
            degraded = protocol.noisy_input(image_to_float(reference))
        if score_on == "padded":
            degraded, reference = _pad(degraded, multiple), _pad(reference, multiple)
        tensor = image_to_tensor(degraded.astype(np.float32)).unsqueeze(0).to(device)
        tiles_used.add(resolve_tile(model, tile, *tensor.shape[-2:]))
        restored = restore_tensor(model, tensor, tile=tile, self_ensemble=self_ensemble, precision=precision)
        score = _score(image.name, tensor_to_image(restored[0]), float_to_image(degraded), reference)
        scores.append(score)
        if on_image:
            on_image(score)
    if protocol is not None:
        description = protocol.describe() + (f"; images from {source}" if root is not None else "")
    else:
        inputs = f"inputs from {source}" if paired else f"inputs degraded {degradation[0]} {degradation[1]}"
        description = f"{inputs}, seed {seed}; PSNR/SSIM on RGB and Y (BT.601), uint8 images, crop_border 0"
    if score_on == "padded":
        description += (
            f"; scored padded: input and reference reflect-padded bottom/right to multiples of {multiple}, "
            "as the authors' test scripts score"
        )
    else:
        description += "; scored at the original size"
    sizes = sorted(f"{size}×{size} tiles" if size else "whole" for size in tiles_used)
    description += f"; restored {' and '.join(sizes) if sizes else 'whole'}"
    if self_ensemble:
        description += " with the 8-fold self-ensemble"
    return EvaluationReport(scores, description)


# --- presets: every test set of one task ------------------------------------------------------------------


@dataclass(frozen=True)
class PresetSet:
    """One column of a preset's table: a test set, the protocol that scores it and the folders below the root
    where it may lie (the first found is used; names are matched case-insensitively)."""

    name: str
    protocol: str
    folders: tuple[str, ...]


def _noise_sets(*datasets: tuple[str, tuple[str, ...]]) -> tuple[PresetSet, ...]:
    return tuple(
        PresetSet(f"{name} σ{sigma}", f"{name.lower()}-sigma{sigma}", folders)
        for name, folders in datasets
        for sigma in (15, 25, 50)
    )


PRESETS: dict[str, tuple[PresetSet, ...]] = {
    "derain": tuple(
        PresetSet(name, name.lower(), (name,)) for name in ("Rain100H", "Rain100L", "Test100", "Test1200", "Test2800")
    ),
    "denoise": _noise_sets(
        ("CBSD68", ("CBSD68",)), ("Kodak24", ("Kodak24", "Kodak")), ("McMaster", ("McMaster",)),
        ("Urban100", ("Urban100",)),
    ),
    "dehaze": (
        PresetSet("SOTS outdoor", "sots-outdoor", ("SOTS/outdoor", "SOTS-outdoor", "SOTS_outdoor", "outdoor")),
        PresetSet("SOTS indoor", "sots-indoor", ("SOTS/indoor", "SOTS-indoor", "SOTS_indoor", "indoor")),
    ),
    "deblur": (
        PresetSet("GoPro", "gopro", ("GoPro/test", "GOPRO_Large/test", "GoPro")),
        PresetSet("HIDE", "hide", ("HIDE", "HIDE_dataset")),
        PresetSet("RealBlur-J", "realblur-j", ("RealBlur-J", "RealBlur_J")),
        PresetSet("RealBlur-R", "realblur-r", ("RealBlur-R", "RealBlur_R")),
    ),
}
"""Task -> the test sets of the authors' test configuration for it, in the order of the table's columns."""


@dataclass(frozen=True)
class PresetResult:
    """One set of a preset run: its folder and report, or (``folder`` None) skipped because it is absent."""

    set: PresetSet
    folder: Path | None
    report: EvaluationReport | None

    @property
    def metrics(self) -> tuple[str, str]:
        """The (PSNR, SSIM) fields the set's protocol reports: on Y or on RGB."""
        space = "y" if get_protocol(self.set.protocol).y_channel else "rgb"
        return f"psnr_{space}", f"ssim_{space}"


def find_folder(root: str | os.PathLike, relative: str) -> Path | None:
    """``root / relative`` with each part matched case-insensitively where no exact match exists; None if absent."""
    folder = Path(root)
    for part in Path(relative).parts:
        if (folder / part).is_dir():
            folder = folder / part
            continue
        if not folder.is_dir():
            return None
        folder = next((child for child in sorted(folder.iterdir())
                       if child.is_dir() and child.name.lower() == part.lower()), None)
        if folder is None:
            return None
    return folder


def get_preset(name: str) -> tuple[PresetSet, ...]:
    """The sets of the preset called ``name`` (see :data:`PRESETS`)."""
    try:
        return PRESETS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None


def evaluate_preset(
    model: ModelDescriptor | nn.Module,
    *,
    preset: str,
    root: str | os.PathLike,
    score_on: ScoreOn = "cropped",
    tile: Tile = "auto",
    self_ensemble: bool = False,
    precision: str = "fp32",
    device: str | torch.device = "cpu",
    on_set: Callable[[PresetResult], None] | None = None,
    on_image: Callable[[ImageScore], None] | None = None,
) -> list[PresetResult]:
    """Score ``model`` on every set of ``preset`` found below ``root``, each in its detected layout and by its
    own protocol, with the options of :func:`evaluate`; absent sets are skipped (their result has no folder).
    An error if no set is found."""
    sets = get_preset(preset)
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    folders = [next(filter(None, (find_folder(root, name) for name in entry.folders)), None) for entry in sets]
    if not any(folders):
        looked = ", ".join(dict.fromkeys(name for entry in sets for name in entry.folders))
        raise DatasetError(f"{root}: none of the {preset} sets found (looked for {looked})")
    results = []
    for entry, folder in zip(sets, folders, strict=True):
        report = None
        if folder is not None:
            report = evaluate(
                model, root=folder, protocol=get_protocol(entry.protocol), score_on=score_on, tile=tile,
                self_ensemble=self_ensemble, precision=precision, device=device, on_image=on_image,
            )
        results.append(PresetResult(entry, folder, report))
        if on_set:
            on_set(results[-1])
    return results


def preset_table(rows: Mapping[str, Sequence[PresetResult]]) -> list[str]:
    """The lines of a preset's table: one row per model (``rows``: label -> its results, all from one root),
    one column per set scored, each cell the mean PSNR/SSIM on the space its protocol names."""
    scored = {label: [result for result in results if result.report is not None] for label, results in rows.items()}
    columns = next(iter(scored.values()))
    heads = [(result.set.name, f"PSNR/SSIM ({'Y' if result.metrics[0] == 'psnr_y' else 'RGB'})") for result in columns]
    label_width = max(len("model"), *(len(label) for label in rows))
    widths = [max(12, len(name), len(space)) for name, space in heads]

    def line(label: str, cells: Sequence[str]) -> str:
        return f"{label:{label_width}s}  " + "  ".join(
            f"{cell:>{width}s}" for cell, width in zip(cells, widths, strict=True)
        )

    lines = [line("model", [name for name, _ in heads]), line("", [space for _, space in heads])]
    for label, results in scored.items():
        cells = []
        for result in results:
            mean, (psnr_name, ssim_name) = result.report.mean(), result.metrics
            cells.append(f"{mean[psnr_name]:.2f}/{mean[ssim_name]:.4f}")
        lines.append(line(label, cells))
    return lines
