"""Small building blocks shared by the block families."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    """Layer normalisation over the channels of a B×C×H×W tensor, separately at every pixel.

    Biased variance, ``eps`` inside the square root, per-channel affine weight and bias. It runs the fused
    ``layer_norm`` kernel on the channels-last view, so it is fastest (no copy) on channels-last tensors and
    returns a channels-last tensor either way.
    """

    def __init__(self, channels: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normalized = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, self.eps)
        return normalized.permute(0, 3, 1, 2)
