"""Scoring a model on a set of images: per-image and mean PSNR/SSIM (RGB and Y) under a stated protocol."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from irconstyle.data.datasets import list_images, pair_folders
from irconstyle.data.degradations import degrade
from irconstyle.data.io import float_to_image, image_to_float, image_to_tensor, read_image, tensor_to_image
from irconstyle.inference import Tile, resolve_tile, restore_tensor
from irconstyle.metrics import RESTORATION_METRICS, Protocol, psnr, restoration_scores
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
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(asdict(self.scores[0])))
            writer.writeheader()
            writer.writerows(asdict(score) for score in self.scores)
            writer.writerow({"name": "mean", **self.mean()})


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
    try:
        sigma = float(level)
    except ValueError:
        return (task, level) if quantize_bits is None else (task, {"level": level, "quantize_bits": quantize_bits})
    if task != "denoise":
        raise ValueError(f"a numeric level is a noise σ, only for denoise; use low/medium/high for {task}")
    return task, {"sigma": sigma} if quantize_bits is None else {"sigma": sigma, "quantize_bits": quantize_bits}


def _uint8(image: np.ndarray) -> np.ndarray:
    return image if image.dtype == np.uint8 else float_to_image(image_to_float(image), 8)


def evaluate(
    model: ModelDescriptor | nn.Module,
    *,
    gt_dir: str | os.PathLike,
    lq_dir: str | os.PathLike | None = None,
    degradation: tuple[str, str | dict] | None = None,
    protocol: Protocol | None = None,
    seed: int = 0,
    tile: Tile = "auto",
    self_ensemble: bool = False,
    precision: str = "fp32",
    device: str | torch.device = "cpu",
    on_image: Callable[[ImageScore], None] | None = None,
) -> EvaluationReport:
    """Restore and score every image, with inputs from one of three sources, tiled as ``model``'s descriptor
    says for ``tile="auto"``.

    ``lq_dir``: degraded images paired with ``gt_dir`` by file stem. ``degradation=(task, level)``: each clean
    image degraded by :func:`irconstyle.data.degradations.degrade`, seeded by ``seed`` + its index. A noise
    ``protocol`` (e.g. ``cbsd68-sigma25``): its own float64, unclipped noise, as in the published test scripts.
    Restored images are rounded to uint8 before scoring (BasicSR convention); metrics use crop border 0.
    """
    sources = sum(x is not None for x in (lq_dir, degradation)) + bool(protocol and protocol.noise_sigma)
    if sources != 1:
        raise ValueError("give exactly one input source: lq_dir, a degradation, or a noise protocol")
    model = describe(model).to(device).eval()
    if lq_dir is not None:
        items = [(pair.gt, pair.lq) for pair in pair_folders(lq_dir, gt_dir)]
    else:
        items = [(path, None) for path in list_images(gt_dir)]
    scores, tiles_used = [], set()
    for index, (gt_path, lq_path) in enumerate(items):
        reference = _uint8(read_image(gt_path))
        if lq_path is not None:
            degraded = image_to_float(read_image(lq_path))
            if degraded.shape != reference.shape:
                raise ValueError(f"{lq_path}: size {degraded.shape[:2]} differs from {gt_path} {reference.shape[:2]}")
        elif degradation is not None:
            degraded = degrade(image_to_float(reference), degradation[0], degradation[1], seed + index).image
        else:
            degraded = protocol.noisy_input(image_to_float(reference))
        tensor = image_to_tensor(degraded.astype(np.float32)).unsqueeze(0).to(device)
        tiles_used.add(resolve_tile(model, tile, *tensor.shape[-2:]))
        restored = restore_tensor(model, tensor, tile=tile, self_ensemble=self_ensemble, precision=precision)
        score = _score(gt_path.name, tensor_to_image(restored[0]), float_to_image(degraded), reference)
        scores.append(score)
        if on_image:
            on_image(score)
    if protocol is not None:
        description = protocol.describe()
    else:
        source = f"inputs from {lq_dir}" if lq_dir is not None else f"inputs degraded {degradation[0]} {degradation[1]}"
        description = f"{source}, seed {seed}; PSNR/SSIM on RGB and Y (BT.601), uint8 images, crop_border 0"
    sizes = sorted(f"{size}×{size} tiles" if size else "whole" for size in tiles_used)
    description += f"; restored {' and '.join(sizes) if sizes else 'whole'}"
    if self_ensemble:
        description += " with the 8-fold self-ensemble"
    return EvaluationReport(scores, description)
