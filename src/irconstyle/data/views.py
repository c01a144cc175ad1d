"""The views a degradation classifier looks at: crops at the image's own resolution and the whole image shrunk.

Noise, blur and rain live at the pixel scale, which shrinking the image destroys, so they are judged on crops
at native resolution, spread over the frame; haze and low light belong to the whole scene, judged on a shrunk
copy. Training (:class:`irconstyle.data.datasets.MixedDegradationDataset`) and inference
(:func:`irconstyle.detect.detect`) build their views with these functions, so both see the same thing.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

VIEW_SIZE = 96
"""Side of every view in pixels."""


def crop_positions(height: int, width: int, *, size: int = VIEW_SIZE, count: int = 6) -> list[tuple[int, int]]:
    """``count`` (top, left) corners of ``size``-pixel crops centred in the cells of a grid over the frame.

    The grid has about as many columns per row as the frame is wide per high; crops overlap where the image is
    small, and start at 0 where it is smaller than ``size`` (:func:`native_crops` pads those).
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    columns = max(1, min(count, round(math.sqrt(count * width / max(height, 1)))))
    rows = math.ceil(count / columns)
    positions = []
    for index in range(count):
        row, column = divmod(index, columns)
        cells_in_row = columns if row < rows - 1 else count - columns * (rows - 1)
        centre_y = (row + 0.5) * height / rows
        centre_x = (column + 0.5) * width / cells_in_row
        top = int(round(min(max(centre_y - size / 2, 0), max(height - size, 0))))
        left = int(round(min(max(centre_x - size / 2, 0), max(width - size, 0))))
        positions.append((top, left))
    return positions


def native_crops(image: torch.Tensor, *, size: int = VIEW_SIZE, count: int = 6) -> torch.Tensor:
    """``count``×3×size×size crops of a 3×H×W image at its own resolution (edge-padded where it is smaller)."""
    height, width = image.shape[-2:]
    if height < size or width < size:
        pad_h, pad_w = max(0, size - height), max(0, size - width)
        image = F.pad(image[None], (0, pad_w, 0, pad_h), mode="replicate")[0]
    return torch.stack(
        [image[:, top : top + size, left : left + size] for top, left in crop_positions(height, width, size=size,
                                                                                          count=count)]
    )


def shrunk_view(image: torch.Tensor, *, size: int = VIEW_SIZE) -> torch.Tensor:
    """The whole 3×H×W image resized to 3×size×size (antialiased, so shrinking averages instead of aliasing)."""
    return F.interpolate(image[None].float(), size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)[0].clamp(0.0, 1.0)
