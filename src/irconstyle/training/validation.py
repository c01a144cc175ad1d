"""Validation during training: restore each validation image whole and score it (PSNR/SSIM, RGB and Y), or,
for ConStyle v2's prompter, the accuracy of its class predictions on labelled views."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from irconstyle import metrics
from irconstyle.inference import restore_tensor


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Dataset,
    *,
    device: torch.device,
    samples: int = 0,
    num_workers: int = 0,
    tile: int | None = None,
) -> tuple[dict[str, float], list[torch.Tensor]]:
    """Mean ``psnr_rgb``, ``psnr_y``, ``ssim_rgb``, ``ssim_y`` of ``model`` over ``dataset``, and previews.

    ``model`` must be in eval mode and accept any image size (ours pad and crop back); with ``tile`` it restores
    in blended tiles of that size. The scores follow the
    field's conventions (crop border 0, images rounded to 8 bits, see :mod:`irconstyle.metrics`). The first
    ``samples`` images come back as 3×H×3W previews: degraded | restored | clean.
    """
    loader = DataLoader(dataset, batch_size=1, num_workers=num_workers, generator=torch.Generator().manual_seed(0))
    totals = {"psnr_rgb": 0.0, "psnr_y": 0.0, "ssim_rgb": 0.0, "ssim_y": 0.0}  # the order the log shows
    previews = []
    count = 0
    for item in loader:
        degraded = item["lq"].to(device)
        clean = item["gt"].to(device)
        restored = _to_8_bits(restore_tensor(model, degraded, tile=tile))
        reference = _to_8_bits(clean)
        for name, value in metrics.restoration_scores(restored, reference, data_range=1.0).items():
            totals[name] += float(value)
        if len(previews) < samples:
            previews.append(torch.cat([degraded.clamp(0.0, 1.0), restored, clean], dim=-1)[0].cpu())
        count += 1
    if count == 0:
        raise ValueError("the validation set is empty")
    return {name: value / count for name, value in totals.items()}, previews


@torch.no_grad()
def classification_accuracy(
    model: nn.Module, dataset: Dataset, *, device: torch.device, num_workers: int = 0, batch_size: int = 16
) -> dict[str, float]:
    """``{"accuracy": …}``: the share of the views of ``dataset`` whose ``label`` is the argmax of ``model(lq)``.

    ``model`` (a classifier, in eval mode) returns class logits; the views of a labelled dataset all have one size.
    """
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                        generator=torch.Generator().manual_seed(0))  # leaves the training's random stream alone
    correct = count = 0
    for item in loader:
        logits = model(item["lq"].to(device))
        correct += int((logits.argmax(dim=1).cpu() == item["label"]).sum())
        count += len(item["label"])
    if count == 0:
        raise ValueError("the validation set is empty")
    return {"accuracy": correct / count}


def _to_8_bits(image: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to the 256 levels of a saved 8-bit image, as BasicSR scores."""
    return torch.round(image.clamp(0.0, 1.0) * 255.0) / 255.0
