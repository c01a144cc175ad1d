"""The straightforward eager formulations of the blocks: the reference the fast paths are checked against.

Our models compute in channels-last memory, normalise channels with the fused ``layer_norm`` kernel and fold
Restormer's attention and projections into a few large matrix products. :func:`plain_copy` gives a copy of a
model that computes the same function the direct way the published implementation writes it: contiguous
NCHW maps, channel LayerNorm from explicit means and variances, attention reshaped per head and normalised,
every projection a separate convolution, KBNet's kernel basis attention as unfolded neighbourhoods times
per-pixel mixed kernels. Tests compare the two; ``benchmarks/`` times them side by side.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from irconstyle.models.kbnet import KernelBasisAttention
from irconstyle.models.layers import LayerNorm2d
from irconstyle.models.nafnet import NAFBlock
from irconstyle.models.restormer import BiasFreeLayerNorm2d, ChannelAttention, GatedFeedForward, RestormerBlock


class PlainLayerNorm2d(LayerNorm2d):
    """Channel LayerNorm from the mean and biased variance over dim 1, then the per-channel affine."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        variance = (x - mean).pow(2).mean(dim=1, keepdim=True)
        normalized = (x - mean) / (variance + self.eps).sqrt()
        return self.weight[:, None, None] * normalized + self.bias[:, None, None]


class PlainBiasFreeLayerNorm2d(BiasFreeLayerNorm2d):
    """Restormer's BiasFree LayerNorm on a B×HW×C copy of the map, as published."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        variance = tokens.var(dim=-1, keepdim=True, unbiased=False)
        out = tokens / torch.sqrt(variance + self.eps) * self.weight
        return out.transpose(1, 2).reshape(batch, channels, height, width)


class PlainWithBiasLayerNorm2d(LayerNorm2d):
    """Restormer's WithBias LayerNorm on a B×HW×C copy of the map, as published."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        mean = tokens.mean(dim=-1, keepdim=True)
        variance = tokens.var(dim=-1, keepdim=True, unbiased=False)
        out = (tokens - mean) / torch.sqrt(variance + self.eps) * self.weight + self.bias
        return out.transpose(1, 2).reshape(batch, channels, height, width)


class PlainNAFBlock(NAFBlock):
    """NAFBlock op by op: gate, pooled channel attention as a 1×1 conv, projection, scaled residual."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = self.depthwise(self.expand(self.mixer_norm(x)))
        first, second = mixed.chunk(2, dim=1)
        mixed = first * second
        mixed = mixed * self.channel_attention(F.adaptive_avg_pool2d(mixed, 1))
        y = x + self.project(mixed) * self.mixer_scale
        fed = self.ffn_expand(self.ffn_norm(y))
        first, second = fed.chunk(2, dim=1)
        return y + self.ffn_project(first * second) * self.ffn_scale


class PlainChannelAttention(ChannelAttention):
    """MDTA per head: normalised queries and keys, softmax(q·kᵀ·temperature)·v, then the 1×1 projection."""

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        batch, channels, height, width = x.shape
        query, key, value = self.qkv_depthwise(self.qkv(x)).chunk(3, dim=1)
        query, key, value = (t.reshape(batch, self.heads, -1, height * width) for t in (query, key, value))
        query, key = F.normalize(query, dim=-1), F.normalize(key, dim=-1)
        attention = (query @ key.transpose(-2, -1) * self.temperature).softmax(dim=-1)
        out = self.project_out((attention @ value).reshape(batch, channels, height, width))
        return out if residual is None else out + residual


class PlainGatedFeedForward(GatedFeedForward):
    """GDFN: 1×1 up, depthwise 3×3, ``gelu(a) · b``, 1×1 down."""

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        gate, content = self.depthwise(self.project_in(x)).chunk(2, dim=1)
        out = self.project_out(F.gelu(gate) * content)
        return out if residual is None else out + residual


class PlainRestormerBlock(RestormerBlock):
    """``x + attention(norm(x))`` then ``x + feedforward(norm(x))``, each sum a separate addition."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.feedforward(self.norm2(x))


class PlainKernelBasisAttention(KernelBasisAttention):
    """KBA as published: every pixel's kernel mixed from the bases, applied to its unfolded k×k neighbourhood."""

    def forward(self, x: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        pixels, groups, k = height * width, self.groups, self.kernel_size
        group_width = channels // groups
        weights = attention.reshape(batch, self.bases, pixels).transpose(1, 2)  # B×HW×N
        bias = weights @ self.bias_bases  # B×HW×C
        kernels = (weights @ self.kernel_bases).reshape(batch, pixels, groups, group_width, group_width * k * k)
        patches = F.unfold(x, kernel_size=k, padding=k // 2)  # B×(C·k²)×HW
        patches = patches.reshape(batch, groups, group_width * k * k, pixels).permute(0, 3, 1, 2)
        out = (kernels @ patches.unsqueeze(-1)).squeeze(-1).reshape(batch, pixels, channels) + bias
        return out.transpose(1, 2).reshape(batch, channels, height, width)


_MAXIM_MODULE = "irconstyle.models.maxim"
_PLAIN = {
    NAFBlock: PlainNAFBlock,
    ChannelAttention: PlainChannelAttention,
    GatedFeedForward: PlainGatedFeedForward,
    RestormerBlock: PlainRestormerBlock,
    BiasFreeLayerNorm2d: PlainBiasFreeLayerNorm2d,
    KernelBasisAttention: PlainKernelBasisAttention,
}


def plain_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` computing with the plain formulations above, in contiguous NCHW memory.

    Supports the NAFNet, Restormer and KBNet families (Origin and ConStyle). MAXIM has no plain formulation here.
    """
    if any(type(module).__module__ == _MAXIM_MODULE for module in model.modules()):
        raise ValueError("plain_copy supports the NAFNet, Restormer and KBNet families; MAXIM has no plain formulation")
    plain = copy.deepcopy(model)
    blocks = [module for module in plain.modules() if isinstance(module, RestormerBlock)]
    restormer_norms = {id(norm) for block in blocks for norm in (block.norm1, block.norm2)}
    for module in plain.modules():
        if type(module) is LayerNorm2d:
            module.__class__ = PlainWithBiasLayerNorm2d if id(module) in restormer_norms else PlainLayerNorm2d
        elif type(module) in _PLAIN:
            module.__class__ = _PLAIN[type(module)]
        if hasattr(module, "channels_last"):
            module.channels_last = False
    for parameter in plain.parameters():
        parameter.data = parameter.data.contiguous()
    return plain
