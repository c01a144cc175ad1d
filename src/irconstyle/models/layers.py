"""Small building blocks shared by the block families."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def exporting() -> bool:
    """Whether the model is being exported (torch.export, TorchScript tracing): shape-specific shortcuts and
    CPU-only fused ops are off, so that the graph serves every size and every runtime."""
    return torch.compiler.is_exporting() or torch.jit.is_tracing()


def onednn_fusable(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether oneDNN's matrix product with a fused epilogue (``torch.ops.mkldnn._linear_pointwise``) can stand
    in for a linear layer: fp32 CPU tensors, a contiguous weight (strided ones take a very slow path), no
    autocast, no gradient needed (the op has no backward), and not while exporting."""
    return (
        not exporting()
        and x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and weight.is_contiguous()
        and torch.backends.mkldnn.is_available()
        and not torch.is_autocast_enabled("cpu")
        and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
    )


def fused_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, *, residual: torch.Tensor | None = None
) -> torch.Tensor:
    """``residual + (x·Wᵀ + b)`` over the last dimension of ``x``.

    Where :func:`onednn_fusable` allows, oneDNN adds the bias and the residual inside the matrix product, so
    neither takes a pass over the output; otherwise torch's ops compute the same sums in the same order.
    """
    if onednn_fusable(x, weight) and (residual is None or residual.is_contiguous()):
        if residual is None:
            return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
        return torch.ops.mkldnn._linear_pointwise.binary(x, residual, weight, bias, "add")
    out = F.linear(x, weight, bias)
    return out if residual is None else residual + out


def pixel_rows(x: torch.Tensor) -> torch.Tensor:
    """A B×C×H×W map as B×HW×C rows (a view for channels-last maps)."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, x.shape[1])


def pointwise_conv(
    x: torch.Tensor, conv: nn.Conv2d | torch.Tensor, bias: torch.Tensor | None = None, *,
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """``residual + conv1x1(x)`` for B×C×H×W maps; ``conv`` is a 1×1 ``nn.Conv2d`` or an O×C×1×1 weight (then
    ``bias`` is its bias).

    Channels-last maps run as :func:`fused_linear` on their B×H×W×C view (no copy, the bias and residual fused
    where oneDNN allows) and come back channels-last; other layouts go through ``F.conv2d``.
    """
    weight, bias = (conv.weight, conv.bias) if isinstance(conv, nn.Conv2d) else (conv, bias)
    if x.is_contiguous(memory_format=torch.channels_last):
        rows = x.permute(0, 2, 3, 1)
        shortcut = None if residual is None else residual.permute(0, 2, 3, 1)
        return fused_linear(rows, weight.flatten(1), bias, residual=shortcut).permute(0, 3, 1, 2)
    out = F.conv2d(x, weight, bias)
    return out if residual is None else residual + out


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
