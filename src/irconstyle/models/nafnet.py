"""NAFNet blocks, the ConStyle U-Net built from them, and the Origin NAFNet baseline.

NAFBlock (Chen et al., "Simple Baselines for Image Restoration", 2022): a nonlinear-activation-free block of
two residual halves. The mixing half normalises, expands 1×1, mixes spatially with a depthwise 3×3, gates
(SimpleGate: one half of the channels times the other), re-weights channels (simplified channel attention)
and projects back; the feed-forward half normalises, expands, gates and projects. Each half's output is
scaled by a learned per-channel factor that starts at zero, so a fresh block is the identity.

Both models run in channels-last memory format inside (faster convolutions and layer norm on CPU) and return
ordinary contiguous tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from irconstyle.models.constyle import ConStyleRestorer
from irconstyle.models.layers import LayerNorm2d, pixel_rows, pointwise_conv
from irconstyle.models.unet import ConStyleUNet


def simple_gate(x: torch.Tensor) -> torch.Tensor:
    """Split the channels in two halves and multiply them."""
    first, second = x.chunk(2, dim=1)
    return first * second


class NAFBlock(nn.Module):
    """One NAFNet block on ``channels`` channels (expansions 2 and 2, LayerNorm eps 1e-6, no dropout)."""

    starts_as_identity = True  # both residual scales start at zero (see load_checkpoint_into_deeper)

    def __init__(self, channels: int, *, mixer_expansion: int = 2, ffn_expansion: int = 2) -> None:
        super().__init__()
        hidden = channels * mixer_expansion
        self.mixer_norm = LayerNorm2d(channels)
        self.expand = nn.Conv2d(channels, hidden, 1)
        self.depthwise = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.channel_attention = nn.Conv2d(hidden // 2, hidden // 2, 1)
        self.project = nn.Conv2d(hidden // 2, channels, 1)
        self.mixer_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))

        ffn_hidden = channels * ffn_expansion
        self.ffn_norm = LayerNorm2d(channels)
        self.ffn_expand = nn.Conv2d(channels, ffn_hidden, 1)
        self.ffn_project = nn.Conv2d(ffn_hidden // 2, channels, 1)
        self.ffn_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        mixed = simple_gate(self.depthwise(pointwise_conv(self.mixer_norm(x), self.expand)))
        # project(mixed · attention) · mixer_scale as one matrix product over the pixels per image: the channel
        # attention and the layer scale are folded into a C×C weight per image, so neither takes a pass over
        # the map (forward or backward). The residual is added separately under autocast, so it stays fp32.
        scale = self.mixer_scale.flatten()
        weight = self.project.weight.flatten(1) * scale[:, None]
        per_image = weight * self._channel_weights(mixed)[:, None, :]
        bias = self.project.bias * scale
        if batch == 1:
            x = pointwise_conv(mixed, per_image[0, :, :, None, None], bias, residual=x)
        else:
            update = torch.baddbmm(bias[None, None], pixel_rows(mixed), per_image.transpose(1, 2))
            x = x + update.view(batch, height, width, channels).permute(0, 3, 1, 2)
        # The feed-forward layer scale is folded into its projection the same way.
        fed = simple_gate(pointwise_conv(self.ffn_norm(x), self.ffn_expand))
        scale = self.ffn_scale.view(-1, 1, 1, 1)
        return pointwise_conv(fed, self.ffn_project.weight * scale, self.ffn_project.bias * scale.flatten(), residual=x)

    def _channel_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Simplified channel attention, B×C: a 1×1 conv (as a matrix product) of the global average."""
        pooled = x.mean(dim=(2, 3))
        attention = self.channel_attention
        return F.linear(pooled, attention.weight.flatten(1), attention.bias)


def nafnet_blocks(channels: int, count: int, stage: str = "") -> nn.Sequential:
    """A stack of ``count`` NAFBlocks (the block factory handed to :class:`ConStyleUNet`)."""
    return nn.Sequential(*(NAFBlock(channels) for _ in range(count)))


class ConStyleNAFNet(ConStyleRestorer):
    """ConStyle + the NAFBlock restoration U-Net (paper size by default: 12.74 M parameters at inference).

    ``encoder_blocks`` / ``decoder_blocks`` count blocks per level, level 1 first (the decoder runs them
    deepest first: 9, 8, 7 by default). There are no refinement blocks: the last decoder level feeds the output
    conv. ``contrastive`` adds the momentum encoder and queue for training; ``constyle_options`` go to
    :class:`~irconstyle.models.constyle.ConStyle`; ``use_feature_maps`` / ``use_latent`` are the ablations of
    :class:`~irconstyle.models.unet.ConStyleUNet`.
    """

    def __init__(
        self,
        *,
        width: int = 48,
        encoder_blocks: Sequence[int] = (7, 8, 9),
        bottleneck_blocks: int = 9,
        decoder_blocks: Sequence[int] = (7, 8, 9),
        contrastive: bool = False,
        constyle_options: Mapping[str, Any] | None = None,
        use_feature_maps: bool = True,
        use_latent: bool = True,
    ) -> None:
        body = ConStyleUNet(
            width=width,
            encoder_blocks=encoder_blocks,
            bottleneck_blocks=bottleneck_blocks,
            decoder_blocks=decoder_blocks,
            refinement_blocks=0,
            make_blocks=nafnet_blocks,
            adapter_activation="leaky_relu",
            channels_last=True,
            use_feature_maps=use_feature_maps,
            use_latent=use_latent,
        )
        super().__init__(body, contrastive=contrastive, constyle_options=constyle_options)


class NAFNet(nn.Module):
    """The Origin NAFNet baseline as configured in the IRConStyle repository (87.40 M parameters).

    A plain U-Net of NAFBlocks: each level halves the resolution with a 2×2 stride-2 conv and doubles the
    channels; the decoder upsamples with a 1×1 conv and pixel-shuffle and *adds* the encoder skip. The residual
    is added to the input. ``encoder_blocks`` are listed from the top level down, ``decoder_blocks`` in the
    order they run (deepest first). Any input size works: it is zero-padded at the bottom/right to a multiple
    of 2^levels, as published, and the output is cropped back. It computes in channels-last memory unless
    ``channels_last`` is set to False. ``make_blocks(channels, count)`` builds each level's block stack
    (NAFBlocks; :class:`~irconstyle.models.kbnet.KBNet` passes KBBlocks).
    """

    channels_last: bool = True

    def __init__(
        self,
        *,
        image_channels: int = 3,
        width: int = 64,
        encoder_blocks: Sequence[int] = (5, 6, 7, 7),
        bottleneck_blocks: int = 7,
        decoder_blocks: Sequence[int] = (5, 6, 7, 7),
        make_blocks: Callable[[int, int], nn.Module] = nafnet_blocks,
    ) -> None:
        super().__init__()
        if not callable(make_blocks):
            raise TypeError(f"make_blocks must build a block stack from (channels, count), got {make_blocks!r}")
        if len(encoder_blocks) != len(decoder_blocks):
            raise ValueError(
                f"encoder_blocks and decoder_blocks need the same number of levels, got "
                f"{list(encoder_blocks)} and {list(decoder_blocks)}"
            )
        self.stem = nn.Conv2d(image_channels, width, 3, padding=1)
        self.output = nn.Conv2d(width, image_channels, 3, padding=1)
        self.size_multiple = 2 ** len(encoder_blocks)

        widths = [width * 2**level for level in range(len(encoder_blocks))]  # top level first
        self.encoders = nn.ModuleList(make_blocks(c, n) for c, n in zip(widths, encoder_blocks, strict=True))
        self.downsamples = nn.ModuleList(nn.Conv2d(c, 2 * c, 2, stride=2) for c in widths)
        self.bottleneck = make_blocks(2 * widths[-1], bottleneck_blocks)
        self.upsamples = nn.ModuleList(
            nn.Sequential(nn.Conv2d(2 * c, 4 * c, 1, bias=False), nn.PixelShuffle(2)) for c in reversed(widths)
        )
        self.decoders = nn.ModuleList(
            make_blocks(c, n) for c, n in zip(reversed(widths), decoder_blocks, strict=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"expected a B×C×H×W image, got shape {tuple(x.shape)}")
        height, width = x.shape[-2:]
        padded = F.pad(x, (0, -width % self.size_multiple, 0, -height % self.size_multiple))
        if self.channels_last:
            padded = padded.contiguous(memory_format=torch.channels_last)

        h = self.stem(padded)
        skips = []
        for encoder, down in zip(self.encoders, self.downsamples, strict=True):
            h = encoder(h)
            skips.append(h)
            h = down(h)
        h = self.bottleneck(h)
        for decoder, up, skip in zip(self.decoders, self.upsamples, reversed(skips), strict=True):
            h = decoder(up(h) + skip)
        restored = self.output(h) + padded
        return restored[..., :height, :width].contiguous()
