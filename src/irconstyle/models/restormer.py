"""Restormer blocks, the Origin Restormer baseline, and ConStyleRestormer (Restormer blocks in the ConStyle U-Net).

A Restormer block is pre-norm: ``x + attention(norm(x))`` then ``x + feedforward(norm(x))``, where the attention
is transposed (channel-to-channel, "MDTA") and the feed-forward network is gated by a GELU branch ("GDFN").

The models run channels-last internally: on CPU the 1×1 and depthwise convolutions are faster in that
layout, the channel LayerNorm is then a plain ``layer_norm`` over the last memory dimension, and the
attention reads its queries, keys and values as B×HW×C matrices without copying them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from irconstyle.models.constyle import ConStyleRestorer, pad_to_multiple
from irconstyle.models.layers import LayerNorm2d, pixel_rows, pointwise_conv
from irconstyle.models.unet import ConStyleUNet

LayerNormType = Literal["WithBias", "BiasFree"]
_LAYER_NORM_TYPES = ("WithBias", "BiasFree")


class BiasFreeLayerNorm2d(nn.Module):
    """Restormer's "BiasFree" channel LayerNorm: ``x / sqrt(var + eps) · weight``, scaled but not centred.

    The variance is still taken around the per-pixel channel mean; only the output is left uncentred.
    """

    eps = 1e-5

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.var(dim=1, keepdim=True, unbiased=False)
        return x * torch.rsqrt(variance + self.eps) * self.weight[:, None, None]


def channel_layer_norm(channels: int, layer_norm: LayerNormType) -> nn.Module:
    """Restormer's channel LayerNorm of the given type ("WithBias": the usual affine LayerNorm, eps 1e-5)."""
    if layer_norm not in _LAYER_NORM_TYPES:
        raise ValueError(f"layer_norm must be one of {_LAYER_NORM_TYPES}, got {layer_norm!r}")
    return LayerNorm2d(channels, eps=1e-5) if layer_norm == "WithBias" else BiasFreeLayerNorm2d(channels)


class ChannelAttention(nn.Module):
    """Multi-Dconv head Transposed Attention (MDTA): per head, a d×d attention between channels.

    Queries, keys and values come from a 1×1 then a depthwise 3×3 convolution. Each query/key channel is
    L2-normalised over the pixels, their cosine similarities are scaled by a learned per-head temperature and
    soft-maxed, and the values are mixed by the result, then projected by a 1×1 convolution.

    Computed over B×HW×C views of the depthwise output: per head one d×d matrix product of its queries and
    keys, the channel norms as sums of squares over the pixels, then the output projection folded into the
    attention (``project_out · blockdiag(attention)`` is one C×C matrix per image), applied to the values
    with ``residual`` added inside the same product.
    """

    def __init__(self, channels: int, *, heads: int, bias: bool) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(channels, channels * 3, kernel_size=1, bias=bias)
        self.qkv_depthwise = nn.Conv2d(
            channels * 3, channels * 3, kernel_size=3, padding=1, groups=channels * 3, bias=bias
        )
        self.project_out = nn.Conv2d(channels, channels, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """The attention output, plus ``residual`` (same shape as ``x``) when given."""
        batch, channels, height, width = x.shape
        heads, head_dim = self.heads, channels // self.heads
        qkv = self.qkv_depthwise(pointwise_conv(x, self.qkv))
        # B×HW×3C: a view when the map is channels-last (the models' layout), a copy otherwise.
        pixels = pixel_rows(qkv)
        query_key, value = pixels[..., : 2 * channels], pixels[..., 2 * channels :]

        # As F.normalize: x / max(|x|, eps), over the pixels of every query and key channel.
        norms = (query_key * query_key).sum(dim=1).sqrt().clamp_min(1e-12)
        query_norm = norms[:, :channels].view(batch, heads, head_dim, 1)
        key_norm = norms[:, channels:].view(batch, heads, 1, head_dim)
        query, key = query_key.split(channels, dim=2)
        head_pairs = zip(query.split(head_dim, dim=2), key.split(head_dim, dim=2), strict=True)
        head_products = [q.transpose(1, 2) @ k for q, k in head_pairs]
        cross = torch.stack(head_products, dim=1)  # B×heads×d×d
        attention = (cross / (query_norm * key_norm) * self.temperature).softmax(dim=-1)

        # out[p] = W · blockdiag(A) · v[p]  ->  out = v · M with M[h·d + j, o] = Σ_i A[h, i, j] W[o, h·d + i].
        out_weight = self.project_out.weight.view(channels, heads, head_dim).permute(1, 2, 0)
        mixing = (attention.transpose(-1, -2) @ out_weight).reshape(batch, channels, channels)
        residual_rows = pixel_rows(residual) if residual is not None else None
        out = _rows_times(value, mixing, [residual_rows, self.project_out.bias])
        return out.view(batch, height, width, channels).permute(0, 3, 1, 2)


class GatedFeedForward(nn.Module):
    """Gated-Dconv Feed-forward Network (GDFN): 1×1 up, depthwise 3×3, ``gelu(a) · b``, 1×1 down.

    The 1×1 down-projection runs as a matrix product over the pixels with ``residual`` added inside it.
    """

    def __init__(self, channels: int, *, expansion: float, bias: bool) -> None:
        super().__init__()
        hidden = int(channels * expansion)
        self.project_in = nn.Conv2d(channels, hidden * 2, kernel_size=1, bias=bias)
        self.depthwise = nn.Conv2d(hidden * 2, hidden * 2, kernel_size=3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, channels, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """The feed-forward output, plus ``residual`` (same shape as ``x``) when given."""
        batch, channels, height, width = x.shape
        gate, content = self.depthwise(pointwise_conv(x, self.project_in)).chunk(2, dim=1)
        hidden = F.gelu(gate).mul_(content)  # in place on a fresh tensor: one large allocation fewer
        residual_rows = pixel_rows(residual) if residual is not None else None
        weight = self.project_out.weight.flatten(1).t()
        out = _rows_times(pixel_rows(hidden), weight, [residual_rows, self.project_out.bias])
        return out.view(batch, height, width, channels).permute(0, 3, 1, 2)


def _rows_times(rows: torch.Tensor, matrix: torch.Tensor, add: list[torch.Tensor | None]) -> torch.Tensor:
    """``rows @ matrix`` plus the given terms, the first one added by the GEMM itself (no extra pass)."""
    terms = [term for term in add if term is not None]
    if not terms:
        return rows @ matrix
    base = terms[0] if len(terms) == 1 else terms[0] + terms[1]
    if matrix.dim() == 2:  # one matrix for every image: a single GEMM over all pixels
        out = torch.addmm(base.reshape(-1, matrix.shape[1]), rows.reshape(-1, rows.shape[-1]), matrix)
        return out.view(*rows.shape[:-1], matrix.shape[1])
    return torch.baddbmm(base, rows, matrix)


class RestormerBlock(nn.Module):
    """Pre-norm transformer block: channel attention, then the gated feed-forward network."""

    def __init__(
        self, channels: int, *, heads: int, ffn_expansion: float, bias: bool, layer_norm: LayerNormType
    ) -> None:
        super().__init__()
        self.norm1 = channel_layer_norm(channels, layer_norm)
        self.attention = ChannelAttention(channels, heads=heads, bias=bias)
        self.norm2 = channel_layer_norm(channels, layer_norm)
        self.feedforward = GatedFeedForward(channels, expansion=ffn_expansion, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attention(self.norm1(x), residual=x)
        return self.feedforward(self.norm2(x), residual=x)


def restormer_stage(
    channels: int, count: int, *, heads: int, ffn_expansion: float, bias: bool, layer_norm: LayerNormType
) -> nn.Sequential:
    """``count`` Restormer blocks in sequence (an empty stage is the identity)."""
    return nn.Sequential(
        *(
            RestormerBlock(channels, heads=heads, ffn_expansion=ffn_expansion, bias=bias, layer_norm=layer_norm)
            for _ in range(count)
        )
    )


def _check_counts(name: str, values: Sequence[int], length: int, *, minimum: int = 0) -> list[int]:
    values = list(values)
    if len(values) != length or any(not isinstance(v, int) or v < minimum for v in values):
        raise ValueError(f"{name} must be {length} integers of at least {minimum}, got {values}")
    return values


class Downsample(nn.Module):
    """Halve the resolution: 3×3 conv to C/2 channels, then pixel-unshuffle (2C channels)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels // 2, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(self.conv(x), 2)


class Upsample(nn.Module):
    """Double the resolution: 3×3 conv to 2C channels, then pixel-shuffle (C/2 channels)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels * 2, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(x), 2)


class Restormer(nn.Module):
    """The Origin Restormer (Zamir et al., CVPR 2022): a four-level U-Net of Restormer blocks.

    Channels double per level (C, 2C, 4C, 8C). The decoder repeats the encoder's block counts; level 1 of the
    decoder stays at 2C (no channel reduction), followed by ``refinement_blocks`` blocks and a 3×3 output conv,
    plus the input image. Inputs of any size are reflect-padded to a multiple of 8 and cropped back.
    ``dual_pixel=True`` is the dual-pixel defocus variant (``in_channels=6``): a 1×1 skip from the stem instead
    of the image residual. It computes in channels-last memory unless ``channels_last`` is set to False.
    """

    size_multiple = 8
    channels_last: bool = True

    def __init__(
        self,
        *,
        in_channels: int = 3,
        out_channels: int = 3,
        width: int = 48,
        level_blocks: Sequence[int] = (4, 6, 6, 8),
        refinement_blocks: int = 4,
        heads: Sequence[int] = (1, 2, 4, 8),
        ffn_expansion: float = 2.66,
        bias: bool = False,
        layer_norm: LayerNormType = "WithBias",
        dual_pixel: bool = False,
    ) -> None:
        super().__init__()
        level_blocks = _check_counts("level_blocks", level_blocks, 4)
        heads = _check_counts("heads", heads, 4, minimum=1)
        if width < 2 or width % 2:
            raise ValueError(f"width must be a positive even number (pixel-unshuffle of width/2), got {width}")
        if not dual_pixel and in_channels != out_channels:
            raise ValueError(
                f"in_channels ({in_channels}) must equal out_channels ({out_channels}) for the image residual"
            )

        def stage(channels: int, count: int, level_heads: int) -> nn.Sequential:
            return restormer_stage(
                channels, count, heads=level_heads, ffn_expansion=ffn_expansion, bias=bias, layer_norm=layer_norm
            )

        c = width
        self.stem = nn.Conv2d(in_channels, c, kernel_size=3, padding=1, bias=False)
        self.encoder1 = stage(c, level_blocks[0], heads[0])
        self.down1 = Downsample(c)
        self.encoder2 = stage(2 * c, level_blocks[1], heads[1])
        self.down2 = Downsample(2 * c)
        self.encoder3 = stage(4 * c, level_blocks[2], heads[2])
        self.down3 = Downsample(4 * c)
        self.bottleneck = stage(8 * c, level_blocks[3], heads[3])
        self.up3 = Upsample(8 * c)
        self.merge3 = nn.Conv2d(8 * c, 4 * c, kernel_size=1, bias=bias)
        self.decoder3 = stage(4 * c, level_blocks[2], heads[2])
        self.up2 = Upsample(4 * c)
        self.merge2 = nn.Conv2d(4 * c, 2 * c, kernel_size=1, bias=bias)
        self.decoder2 = stage(2 * c, level_blocks[1], heads[1])
        self.up1 = Upsample(2 * c)
        self.decoder1 = stage(2 * c, level_blocks[0], heads[0])
        self.refinement = stage(2 * c, refinement_blocks, heads[0])
        self.dual_pixel_skip = nn.Conv2d(c, 2 * c, kernel_size=1, bias=bias) if dual_pixel else None
        self.output = nn.Conv2d(2 * c, out_channels, kernel_size=3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"expected a B×C×H×W image, got shape {tuple(x.shape)}")
        padded, (height, width) = pad_to_multiple(x, self.size_multiple)
        image = padded.contiguous(memory_format=torch.channels_last) if self.channels_last else padded
        stem = self.stem(image)
        level1 = self.encoder1(stem)
        level2 = self.encoder2(self.down1(level1))
        level3 = self.encoder3(self.down2(level2))
        y = self.bottleneck(self.down3(level3))
        y = self.decoder3(self.merge3(torch.cat([self.up3(y), level3], dim=1)))
        y = self.decoder2(self.merge2(torch.cat([self.up2(y), level2], dim=1)))
        y = self.decoder1(torch.cat([self.up1(y), level1], dim=1))
        y = self.refinement(y)
        if self.dual_pixel_skip is not None:
            y = self.output(y + self.dual_pixel_skip(stem))
        else:
            y = self.output(y) + image
        return y[..., :height, :width].contiguous()


class ConStyleRestormer(ConStyleRestorer):
    """ConStyle + the Restormer-block restoration U-Net (paper size by default: 15.57 M parameters at inference).

    The ConStyle U-Net (:class:`~irconstyle.models.unet.ConStyleUNet`: widths C, 2C, 3C, bottleneck 4C) with
    Restormer blocks, PReLU feature adapters, and ``refinement_blocks`` blocks at 2C before the output conv.
    ``encoder_blocks`` / ``decoder_blocks`` count blocks per level, level 1 first (the decoder runs them deepest
    first: 6, 6, 4 by default). ``heads`` gives the attention heads of levels 1, 2, 3 and the bottleneck; a
    decoder level and its encoder level share a head count, and the refinement blocks use level 1's. ``bias``
    applies to the blocks, the latent-fusion conv and the output conv. ``contrastive`` adds the momentum
    encoder and queue for training; ``constyle_options`` go to :class:`~irconstyle.models.constyle.ConStyle`;
    ``use_feature_maps`` / ``use_latent`` are the ablations of :class:`~irconstyle.models.unet.ConStyleUNet`.
    """

    def __init__(
        self,
        *,
        width: int = 48,
        encoder_blocks: Sequence[int] = (4, 6, 6),
        bottleneck_blocks: int = 8,
        decoder_blocks: Sequence[int] = (4, 6, 6),
        refinement_blocks: int = 4,
        heads: Sequence[int] = (1, 2, 4, 8),
        ffn_expansion: float = 2.66,
        bias: bool = False,
        layer_norm: LayerNormType = "WithBias",
        contrastive: bool = False,
        constyle_options: Mapping[str, Any] | None = None,
        use_feature_maps: bool = True,
        use_latent: bool = True,
    ) -> None:
        heads = _check_counts("heads", heads, 4, minimum=1)
        stage_heads = {
            "encoder1": heads[0],
            "encoder2": heads[1],
            "encoder3": heads[2],
            "bottleneck": heads[3],
            "decoder3": heads[2],
            "decoder2": heads[1],
            "decoder1": heads[0],
            "refinement": heads[0],
        }

        def make_blocks(channels: int, count: int, stage: str) -> nn.Sequential:
            return restormer_stage(
                channels,
                count,
                heads=stage_heads[stage],
                ffn_expansion=ffn_expansion,
                bias=bias,
                layer_norm=layer_norm,
            )

        body = ConStyleUNet(
            width=width,
            encoder_blocks=_check_counts("encoder_blocks", encoder_blocks, 3),
            bottleneck_blocks=bottleneck_blocks,
            decoder_blocks=_check_counts("decoder_blocks", decoder_blocks, 3),
            refinement_blocks=refinement_blocks,
            make_blocks=make_blocks,
            adapter_activation="prelu",
            channels_last=True,
            fusion_output_bias=bias,
            use_feature_maps=use_feature_maps,
            use_latent=use_latent,
        )
        super().__init__(body, contrastive=contrastive, constyle_options=constyle_options)
