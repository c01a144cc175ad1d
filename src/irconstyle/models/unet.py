"""The general restoration U-Net of IRConStyle, independent of the block family inside it.

Three encoder levels at widths C, 2C, 3C and a bottleneck at 4C: each downsampling step (3×3 conv to a
quarter of the channels, then pixel-unshuffle) concatenates one of ConStyle's feature maps, brought to C
channels by a 1×1 "adapter", so the width grows by C per level instead of doubling. The bottleneck output is
modulated by ConStyle's latent (``concat[x, x ⊙ W·q]`` then a 1×1 conv down to 3C). Each decoder level
upsamples (3×3 conv to 4× channels, pixel-shuffle), concatenates the encoder skip and fuses with a 1×1 conv.
Optional refinement blocks and a 3×3 conv give the residual that is added to the input image.

The blocks come from ``make_blocks(channels, count, stage)``; this module knows nothing of their insides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import nn

BlockFactory = Callable[[int, int, str], nn.Module]
STAGES = ("encoder1", "encoder2", "encoder3", "bottleneck", "decoder3", "decoder2", "decoder1", "refinement")


def pixel_unshuffle_down(channels: int) -> nn.Sequential:
    """Halve the resolution keeping ``channels``: 3×3 conv to channels/4, then 2×2 pixel-unshuffle."""
    return nn.Sequential(nn.Conv2d(channels, channels // 4, 3, padding=1, bias=False), nn.PixelUnshuffle(2))


def pixel_shuffle_up(channels: int) -> nn.Sequential:
    """Double the resolution keeping ``channels``: 3×3 conv to 4×channels, then 2×2 pixel-shuffle."""
    return nn.Sequential(nn.Conv2d(channels, channels * 4, 3, padding=1, bias=False), nn.PixelShuffle(2))


def feature_adapter(in_channels: int, out_channels: int, activation: str) -> nn.Sequential:
    act = nn.PReLU(out_channels) if activation == "prelu" else nn.LeakyReLU(0.1, inplace=True)
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), act)


class ConStyleUNet(nn.Module):
    """The ConStyle restoration U-Net body: ``forward(image, latent_q, features) -> restored image``.

    ``encoder_blocks`` and ``decoder_blocks`` are indexed by level, level 1 (full resolution) first, exactly
    like the authors' ``left_blk_num`` / ``right_blk_num``: ``decoder_blocks[2]`` is the deepest decoder
    level (the paper's ConStyleNAFNet uses ``encoder_blocks=(7, 8, 9)``, ``decoder_blocks=(7, 8, 9)``, i.e.
    the decoder runs 9, 8, 7 blocks from the bottom up). ``make_blocks(channels, count, stage)`` builds each
    stage's block stack, with ``stage`` one of :data:`STAGES`; a count of 0 must give an identity.

    ``adapter_activation`` is the activation after each feature adapter's 1×1 conv: ``"leaky_relu"`` (0.1) in
    the NAFNet/MAXIM variants, ``"prelu"`` (one slope per channel) in the Restormer variant. ``channels_last``
    runs the body in channels-last memory format (faster for convolutional blocks on CPU); the result is
    returned in the ordinary contiguous format either way. ``fusion_output_bias`` gives the latent-fusion
    1×1 conv and the output 3×3 conv a bias (the Restormer variant ties both to its blocks' ``bias``);
    ``output_bias`` sets the output conv's alone. ``stem_bias`` gives the stem conv a bias (the Uformer and
    KBNet variants) and ``stem_leaky_slope`` puts a LeakyReLU of that slope after it (the Uformer variant).
    ``use_feature_maps=False`` and ``use_latent=False`` are ablations (not in the paper's models): the levels get
    zeros in place of ConStyle's maps (no adapters), or the bottleneck's modulation factor is fixed at 1 (no
    latent projection); every other layer keeps its shape.
    Spatial sizes must be multiples of ``size_multiple`` (8, the three ×2 downsamplings; blocks that need more,
    such as windowed attention, pass a multiple of 8), and the features must be at 1/2, 1/4 and 1/8 of the image
    size.
    """

    def __init__(
        self,
        *,
        width: int,
        encoder_blocks: Sequence[int],
        bottleneck_blocks: int,
        decoder_blocks: Sequence[int],
        refinement_blocks: int,
        make_blocks: BlockFactory,
        adapter_activation: Literal["leaky_relu", "prelu"] = "leaky_relu",
        latent_dim: int = 128,
        feature_channels: Sequence[int] = (32, 64, 128),
        image_channels: int = 3,
        channels_last: bool = False,
        fusion_output_bias: bool = False,
        output_bias: bool | None = None,
        stem_bias: bool = False,
        stem_leaky_slope: float | None = None,
        use_feature_maps: bool = True,
        use_latent: bool = True,
        size_multiple: int = 8,
    ) -> None:
        super().__init__()
        if size_multiple < 8 or size_multiple % 8:
            raise ValueError(f"size_multiple must be a multiple of 8 (three ×2 downsamplings), got {size_multiple}")
        self.size_multiple = size_multiple
        if len(encoder_blocks) != 3 or len(decoder_blocks) != 3 or len(feature_channels) != 3:
            raise ValueError(
                "encoder_blocks, decoder_blocks and feature_channels need one entry per level (3), got "
                f"{list(encoder_blocks)}, {list(decoder_blocks)}, {list(feature_channels)}"
            )
        if width < 4 or width % 4:
            raise ValueError(f"width must be a positive multiple of 4 (pixel-unshuffle), got {width}")
        if adapter_activation not in ("leaky_relu", "prelu"):
            raise ValueError(
                f"adapter_activation must be 'leaky_relu' or 'prelu', got {adapter_activation!r}"
            )
        self.channels_last = channels_last
        c = width
        self.stem = nn.Conv2d(image_channels, c, 3, padding=1, bias=stem_bias)
        self.stem_activation = nn.Identity() if stem_leaky_slope is None else nn.LeakyReLU(stem_leaky_slope)
        self.feature_adapters = (
            nn.ModuleList(feature_adapter(n, c, adapter_activation) for n in feature_channels)
            if use_feature_maps
            else None
        )

        self.encoder1 = make_blocks(c, encoder_blocks[0], "encoder1")
        self.down1 = pixel_unshuffle_down(c)
        self.encoder2 = make_blocks(2 * c, encoder_blocks[1], "encoder2")
        self.down2 = pixel_unshuffle_down(2 * c)
        self.encoder3 = make_blocks(3 * c, encoder_blocks[2], "encoder3")
        self.down3 = pixel_unshuffle_down(3 * c)

        self.bottleneck = make_blocks(4 * c, bottleneck_blocks, "bottleneck")
        self.latent_projection = nn.Linear(latent_dim, 4 * c) if use_latent else None
        self.latent_fusion = nn.Conv2d(8 * c, 3 * c, 1, bias=fusion_output_bias)

        self.up3 = pixel_shuffle_up(3 * c)
        self.merge3 = nn.Conv2d(6 * c, 4 * c, 1, bias=False)
        self.decoder3 = make_blocks(4 * c, decoder_blocks[2], "decoder3")
        self.up2 = pixel_shuffle_up(4 * c)
        self.merge2 = nn.Conv2d(6 * c, 3 * c, 1, bias=False)
        self.decoder2 = make_blocks(3 * c, decoder_blocks[1], "decoder2")
        self.up1 = pixel_shuffle_up(3 * c)
        self.merge1 = nn.Conv2d(4 * c, 2 * c, 1, bias=False)
        self.decoder1 = make_blocks(2 * c, decoder_blocks[0], "decoder1")

        self.refinement = make_blocks(2 * c, refinement_blocks, "refinement")
        output_bias = fusion_output_bias if output_bias is None else output_bias
        self.output = nn.Conv2d(2 * c, image_channels, 3, padding=1, bias=output_bias)

    def forward(
        self, image: torch.Tensor, latent_q: torch.Tensor, features: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        check_body_inputs(image, latent_q, features, self.size_multiple)
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
            features = [feature.contiguous(memory_format=torch.channels_last) for feature in features]
        maps = self._feature_maps(image, features)

        level1 = self.encoder1(self.stem_activation(self.stem(image)))
        level2 = self.encoder2(torch.cat([self.down1(level1), maps[0]], dim=1))
        level3 = self.encoder3(torch.cat([self.down2(level2), maps[1]], dim=1))
        x = self.bottleneck(torch.cat([self.down3(level3), maps[2]], dim=1))

        modulated = x if self.latent_projection is None else x * self.latent_projection(latent_q)[:, :, None, None]
        x = self.latent_fusion(torch.cat([x, modulated], dim=1))

        x = self.decoder3(self.merge3(torch.cat([self.up3(x), level3], dim=1)))
        x = self.decoder2(self.merge2(torch.cat([self.up2(x), level2], dim=1)))
        x = self.decoder1(self.merge1(torch.cat([self.up1(x), level1], dim=1)))
        return (self.output(self.refinement(x)) + image).contiguous()

    def _feature_maps(self, image: torch.Tensor, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if self.feature_adapters is not None:
            return [adapter(feature) for adapter, feature in zip(self.feature_adapters, features, strict=True)]
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        shapes = [(image.shape[0], self.stem.out_channels, *feature.shape[-2:]) for feature in features]
        return [image.new_zeros(shape).contiguous(memory_format=layout) for shape in shapes]


def check_body_inputs(
    image: torch.Tensor, latent_q: torch.Tensor, features: Sequence[torch.Tensor], multiple: int
) -> None:
    if image.dim() != 4:
        raise ValueError(f"expected a B×C×H×W image, got shape {tuple(image.shape)}")
    height, width = image.shape[-2:]
    if height % multiple or width % multiple:
        raise ValueError(
            f"image size {height}×{width} is not a multiple of {multiple}; pad it first "
            "(ConStyleRestorer does this for you)"
        )
    if latent_q.dim() != 2 or latent_q.shape[0] != image.shape[0]:
        raise ValueError(f"latent_q must be B×D with B={image.shape[0]}, got shape {tuple(latent_q.shape)}")
    if len(features) != 3:
        raise ValueError(f"expected 3 ConStyle feature maps, got {len(features)}")
    for level, feature in enumerate(features, start=1):
        expected = (height >> level, width >> level)
        if tuple(feature.shape[-2:]) != expected:
            raise ValueError(
                f"ConStyle feature {level - 1} is {tuple(feature.shape[-2:])}, expected {expected} "
                f"(1/{2**level} of the {height}×{width} image)"
            )
