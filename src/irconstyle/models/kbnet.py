"""KBNet blocks, the ConStyle U-Net built from them, and the Origin KBNet baseline.

KBBlock (Zhang et al., "KBNet: Kernel Basis Network for Image Restoration", 2023) is a NAFNet-like block whose
spatial mixing is *kernel basis attention* (KBA): a block learns a small set of convolution kernels (the
bases, 32 by default), and at every pixel mixes them into one kernel with per-pixel attention weights
predicted from the input, then applies that pixel's kernel to its neighbourhood. Around it, the mixing half
multiplies the KBA output by a local convolution branch and a pooled channel attention and projects back;
the feed-forward half is NAFNet's (expand, SimpleGate, project). Each half's output is scaled by a learned
per-channel factor (starting at 0.01).

Both models run in channels-last memory format inside and return ordinary contiguous tensors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from irconstyle.models.constyle import ConStyleRestorer
from irconstyle.models.layers import LayerNorm2d
from irconstyle.models.nafnet import NAFNet, simple_gate
from irconstyle.models.unet import ConStyleUNet


class SimpleGate(nn.Module):
    """:func:`~irconstyle.models.nafnet.simple_gate` as a module (a step of a Sequential)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return simple_gate(x)


def check_kbblock_width(channels: int) -> None:
    """KBBlocks split their channels into ``channels // 4`` groups and the attention branch into
    ``min(channels, 32)`` groups; both must divide the width."""
    if channels < 4 or channels % (channels // 4) or channels % min(channels, 32):
        raise ValueError(
            f"KBNet block width {channels} is not supported: a KBBlock needs at least 4 channels, divisible both "
            "by channels // 4 and by min(channels, 32) (true of every multiple of 32 and of 4 below 32)"
        )


class KernelBasisAttention(nn.Module):
    """KBA: at every pixel, a convolution kernel mixed from ``bases`` learned kernels by per-pixel weights.

    ``forward(x, attention)`` with ``x`` B×C×H×W and ``attention`` B×N×H×W (N bases) returns
    ``Σ_n attention_n(p) · (kernel_n ⋆ x)(p) + Σ_n attention_n(p) · bias_n`` at every pixel p, where each
    kernel_n is a grouped k×k convolution (``channels // 4`` groups). ``kernel_bases`` holds the N kernels
    flattened (N × C·(C/groups)·k²), ``bias_bases`` their biases (N × C). Returns a channels-last tensor.

    The published formulation unfolds the k×k neighbourhoods, mixes every pixel's kernel (a GEMM of the
    attention with the bases) and multiplies each pixel's patch by it. The mixed kernels, C·(C/groups)·k²
    numbers per pixel, are the costly part: for the whole map they are far larger than the caches, so they are
    written out and read back once from memory. Here the same products, in the same order, run over chunks of
    pixels whose mixed kernels fit in the cache (about 2 MB), so they are used right after being made.
    """

    chunk_bytes = 1 << 21  # the mixed kernels of one chunk of pixels

    def __init__(self, channels: int, *, bases: int = 32, kernel_size: int = 3) -> None:
        super().__init__()
        check_kbblock_width(channels)
        self.channels, self.bases, self.kernel_size = channels, bases, kernel_size
        self.groups = channels // 4
        group_width = channels // self.groups
        self.kernel_bases = nn.Parameter(torch.empty(1, bases, channels * group_width * kernel_size**2))
        self.bias_bases = nn.Parameter(torch.empty(1, bases, channels))
        nn.init.kaiming_uniform_(self.kernel_bases, a=math.sqrt(5))
        bound = 1 / math.sqrt(channels * group_width * kernel_size**2)
        nn.init.uniform_(self.bias_bases, -bound, bound)

    def forward(self, x: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        k = self.kernel_size
        group_width = channels // self.groups
        patch = group_width * k * k  # one group's neighbourhood
        # Pixel-major rows: B·HW × C·k² neighbourhoods and B·HW × N attention weights, copied contiguous whatever
        # the batch (a reshape would view or copy depending on it, a choice an exported program keeps as a guard).
        patches = F.unfold(x, kernel_size=k, padding=k // 2).transpose(1, 2).contiguous().view(-1, channels * k * k)
        weights = attention.permute(0, 2, 3, 1).contiguous().view(-1, self.bases)
        kernel_bases, bias_bases = self.kernel_bases[0], self.bias_bases[0]

        def mix(chunk_weights: torch.Tensor, chunk_patches: torch.Tensor) -> torch.Tensor:
            kernels = (chunk_weights @ kernel_bases).view(-1, group_width, patch)  # (P·groups) × C/g × patch
            bias = (chunk_weights @ bias_bases).view(-1, group_width, 1)
            return torch.baddbmm(bias, kernels, chunk_patches.reshape(-1, patch, 1)).view(-1, channels)

        if torch.compiler.is_exporting() or torch.jit.is_tracing():
            # one chunk: a graph for every size cannot loop over a count that depends on the size
            out = mix(weights, patches)
        else:
            step = max(1, self.chunk_bytes // (kernel_bases.shape[1] * kernel_bases.element_size()))
            chunks = [mix(weights[start : start + step], patches[start : start + step])
                      for start in range(0, weights.shape[0], step)]
            out = torch.cat(chunks) if len(chunks) > 1 else chunks[0]
        return out.view(batch, height, width, channels).permute(0, 3, 1, 2)


class KBBlock(nn.Module):
    """One KBNet block ("KBBlock_s") on ``channels`` channels.

    Mixing half: ``norm → [KBA(value, attention) · kba_scale + value] · local · channel_attention → project``,
    where the value map is a 1×1 then depthwise 3×3 conv, the attention over the kernel bases comes from a
    grouped 3×3 conv, SimpleGate and 1×1 conv (scaled) plus a direct 1×1 conv, and the local branch is a 1×1
    conv then a 5×5 conv in ``channels // 4`` groups (``lightweight``: a depthwise 3×3 instead).
    Feed-forward half: ``norm → 1×1 up (ffn_expansion·C) → SimpleGate → 1×1 down``.
    """

    def __init__(
        self,
        channels: int,
        *,
        ffn_expansion: int = 2,
        lightweight: bool = False,
        bases: int = 32,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        check_kbblock_width(channels)
        c = channels
        self.mixer_norm = LayerNorm2d(c)
        self.channel_attention = nn.Conv2d(c, c, 1)
        if lightweight:
            local_spatial = nn.Conv2d(c, c, 3, padding=1, groups=c)
        else:
            local_spatial = nn.Conv2d(c, c, 5, padding=2, groups=c // 4)
        self.local_branch = nn.Sequential(nn.Conv2d(c, c, 1), local_spatial)
        self.value_pointwise = nn.Conv2d(c, c, 1)
        self.value_depthwise = nn.Conv2d(c, c, 3, padding=1, groups=c)
        attention_width = min(c, 32)
        self.basis_attention = nn.Sequential(
            nn.Conv2d(c, attention_width, 3, padding=1, groups=attention_width),
            SimpleGate(),
            nn.Conv2d(attention_width // 2, bases, 1),
        )
        self.basis_attention_direct = nn.Conv2d(c, bases, 1)
        self.kba = KernelBasisAttention(c, bases=bases, kernel_size=kernel_size)
        self.project = nn.Conv2d(c, c, 1)

        ffn_hidden = c * ffn_expansion
        self.ffn_norm = LayerNorm2d(c)
        self.ffn_expand = nn.Conv2d(c, ffn_hidden, 1)
        self.ffn_project = nn.Conv2d(ffn_hidden // 2, c, 1)

        self.kba_scale = nn.Parameter(torch.full((1, c, 1, 1), 1e-2))
        self.attention_scale = nn.Parameter(torch.full((1, bases, 1, 1), 1e-2))
        self.mixer_scale = nn.Parameter(torch.full((1, c, 1, 1), 1e-2))
        self.ffn_scale = nn.Parameter(torch.full((1, c, 1, 1), 1e-2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = self.mixer_norm(x)
        channel_weights = self.channel_attention(normed.mean(dim=(2, 3), keepdim=True))
        local = self.local_branch(normed)
        attention = self.basis_attention(normed) * self.attention_scale + self.basis_attention_direct(normed)
        value = self.value_depthwise(self.value_pointwise(normed))
        mixed = self.kba(value, attention) * self.kba_scale + value
        y = x + self.project(mixed * local * channel_weights) * self.mixer_scale
        fed = simple_gate(self.ffn_expand(self.ffn_norm(y)))
        return y + self.ffn_project(fed) * self.ffn_scale


def kbnet_blocks(channels: int, count: int, *, ffn_expansion: int = 2, lightweight: bool = False) -> nn.Sequential:
    """A stack of ``count`` KBBlocks (an empty stack is the identity)."""
    return nn.Sequential(
        *(KBBlock(channels, ffn_expansion=ffn_expansion, lightweight=lightweight) for _ in range(count))
    )


class ConStyleKBNet(ConStyleRestorer):
    """ConStyle + the KBBlock restoration U-Net (paper size by default: 7.09 M parameters at inference).

    The ConStyle U-Net (:class:`~irconstyle.models.unet.ConStyleUNet`: widths C, 2C, 3C, bottleneck 4C) with
    KBBlocks, leaky-ReLU feature adapters, a biased stem conv and no refinement blocks. Every width (C, 2C, 3C,
    4C) must suit a KBBlock (see :func:`check_kbblock_width`): C = 8 or 32 work, 12 and 16 do not.
    ``encoder_blocks`` / ``decoder_blocks`` count blocks per level, level 1 first (the decoder runs them
    deepest first). Inputs of any size are reflect-padded to a multiple of 8 and cropped back (the published
    model requires multiples of 8). ``contrastive`` adds the momentum encoder and queue for training;
    ``constyle_options`` go to :class:`~irconstyle.models.constyle.ConStyle`.
    """

    def __init__(
        self,
        *,
        width: int = 32,
        encoder_blocks: Sequence[int] = (3, 3, 4),
        bottleneck_blocks: int = 4,
        decoder_blocks: Sequence[int] = (3, 3, 4),
        lightweight: bool = False,
        ffn_expansion: int = 2,
        contrastive: bool = False,
        constyle_options: Mapping[str, Any] | None = None,
    ) -> None:
        for level_width in (width, 2 * width, 3 * width, 4 * width):
            check_kbblock_width(level_width)

        def make_blocks(channels: int, count: int, stage: str) -> nn.Sequential:
            return kbnet_blocks(channels, count, ffn_expansion=ffn_expansion, lightweight=lightweight)

        body = ConStyleUNet(
            width=width,
            encoder_blocks=encoder_blocks,
            bottleneck_blocks=bottleneck_blocks,
            decoder_blocks=decoder_blocks,
            refinement_blocks=0,
            make_blocks=make_blocks,
            adapter_activation="leaky_relu",
            channels_last=True,
            stem_bias=True,
        )
        super().__init__(body, contrastive=contrastive, constyle_options=constyle_options)


class KBNet(NAFNet):
    """The Origin KBNet baseline as configured in the IRConStyle repository (130.25 M parameters).

    NAFNet's plain U-Net (:class:`~irconstyle.models.nafnet.NAFNet`: channels double per level, stride-2
    convs down, 1×1 conv and pixel-shuffle up, skips *added*) with KBBlocks. ``encoder_blocks`` are listed from
    the top level down, ``decoder_blocks`` in the order they run (deepest first). Every level width
    ``width · 2^k`` must suit a KBBlock (see :func:`check_kbblock_width`): 8, 16, 32, 64 work, 12 does not.
    Any input size works: zero-padded at the bottom/right to a multiple of 2^levels, as published, and cropped.
    """

    def __init__(
        self,
        *,
        image_channels: int = 3,
        width: int = 64,
        encoder_blocks: Sequence[int] = (2, 2, 2, 2),
        bottleneck_blocks: int = 12,
        decoder_blocks: Sequence[int] = (4, 2, 2, 2),
        lightweight: bool = False,
        ffn_expansion: int = 2,
    ) -> None:
        for level in range(len(encoder_blocks) + 1):
            check_kbblock_width(width * 2**level)

        def make_blocks(channels: int, count: int) -> nn.Sequential:
            return kbnet_blocks(channels, count, ffn_expansion=ffn_expansion, lightweight=lightweight)

        super().__init__(
            image_channels=image_channels,
            width=width,
            encoder_blocks=encoder_blocks,
            bottleneck_blocks=bottleneck_blocks,
            decoder_blocks=decoder_blocks,
            make_blocks=make_blocks,
        )
