"""Uformer's LeWin blocks, the Origin Uformer baseline, and ConStyleUformer (LeWin blocks in the ConStyle U-Net).

A LeWin block (Wang et al., "Uformer", CVPR 2022) is a pre-norm transformer block on a map of tokens: window
self-attention (non-overlapping square windows, a learned relative position bias, every other block's windows
shifted by half a window with the wrapped-around regions masked), then a token MLP, either the locally-enhanced
"LeFF" (linear up, depthwise 3×3 conv, linear down) or a plain two-layer MLP. Decoder blocks may add a learned
"modulator" (one C-vector per window position) to every window before the attention, and a "cross modulator": a
full-map cross attention from the tokens to a learned set of window-size² tokens.

Both models pad their input (reflection, bottom/right) to a multiple of :attr:`size_multiple` and crop the
output back. The published code only runs on square inputs whose side suits every level's window (it recovers
the side as √tokens); for those inputs nothing is padded and the output is the published one. Every block
works on any H×W that is a multiple of its window, so non-square images need no square padding.

As published, the window of each level and whether it shifts are decided at construction from ``img_size``: a
level whose side ``img_size / 2^k`` is at most ``window_size`` uses a window of that side and never shifts.
``img_size`` therefore changes the parameter shapes (the position-bias tables) and the size multiple, not the
accepted input sizes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from irconstyle.models.constyle import ConStyleRestorer, pad_to_multiple
from irconstyle.models.restormer import _check_counts
from irconstyle.models.unet import ConStyleUNet

TokenMlpKind = Literal["leff", "fastleff", "mlp", "ffn"]
TokenProjection = Literal["linear", "conv"]
_TOKEN_MLPS = ("leff", "fastleff", "mlp", "ffn")
_TOKEN_PROJECTIONS = ("linear", "conv")
# What the published shift mask adds to the attention logits between tokens of different regions.
_SHIFT_MASK_VALUE = -100.0


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero whole samples with probability ``rate`` and rescale the rest (identity in eval)."""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


def relative_position_index(window: int) -> torch.Tensor:
    """For every pair of positions in a window (row-major), the index of their offset in the bias table.

    The table has (2w−1)² rows, one per (dy, dx) offset, row ``(dy + w − 1)·(2w − 1) + dx + w − 1``.
    """
    rows, cols = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack([rows.flatten(), cols.flatten()])  # 2×w²
    offsets = coords[:, :, None] - coords[:, None, :] + (window - 1)  # 2×w²×w², both in [0, 2w−2]
    return offsets[0] * (2 * window - 1) + offsets[1]


def shifted_window_mask(height: int, width: int, window: int, shift: int, device: torch.device) -> torch.Tensor:
    """The additive mask of shifted-window attention, (windows)×w²×w²: −100 between tokens that the cyclic
    shift brought together from different regions of the map, 0 elsewhere."""
    regions = torch.zeros(height, width, device=device)
    label = 0
    bands = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for rows in bands:
        for cols in bands:
            regions[rows, cols] = label
            label += 1
    labels = window_partition(regions[None, :, :, None], window).flatten(1)  # windows×w²
    different = labels[:, None, :] != labels[:, :, None]
    return torch.zeros_like(different, dtype=torch.float32).masked_fill_(different, _SHIFT_MASK_VALUE)


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """B×H×W×C -> (B·windows)×w×w×C, windows in row-major order within each image."""
    batch, height, width, channels = x.shape
    x = x.reshape(batch, height // window, window, width // window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, channels)


def window_merge(windows: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    """The inverse of :func:`window_partition`: (B·windows)×w×w×C -> B×H×W×C."""
    channels = windows.shape[-1]
    x = windows.reshape(-1, height // window, width // window, window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, channels)


class SeparableConv2d(nn.Module):
    """Depthwise k×k conv (zero padding), ReLU, then a 1×1 conv: the "conv" token projection's q, k and v."""

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int = 3) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(
            in_channels, in_channels, kernel_size, padding=kernel_size // 2, groups=in_channels
        )
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(F.relu(self.depthwise(x)))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each w×w window, with a learned bias per head and relative offset.

    ``forward(windows, mask)`` takes (B·windows)×w²×C tokens; ``mask`` (windows×w²×w², additive) is the
    shifted-window mask or None. ``token_projection="linear"`` computes q, k, v by linear maps;
    ``"conv"`` by a :class:`SeparableConv2d` each, over the w×w window (zero-padded at its border), biases
    always on and dilation 1: the published conv projection, whose code passes its bias flag where the
    depthwise conv's dilation goes (``True``, i.e. 1, which PyTorch rejects, so that code cannot run as written).
    ``qk_scale`` replaces the usual 1/√(head dim) when given (and non-zero, as published).
    """

    def __init__(
        self,
        channels: int,
        *,
        window: int,
        heads: int,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        token_projection: TokenProjection = "linear",
        attention_dropout: float = 0.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        if token_projection not in _TOKEN_PROJECTIONS:
            raise ValueError(f"token_projection must be one of {_TOKEN_PROJECTIONS}, got {token_projection!r}")
        self.window = window
        self.heads = heads
        self.scale = qk_scale or (channels // heads) ** -0.5
        self.token_projection = token_projection
        self.position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.position_bias_table, std=0.02)
        self.register_buffer("position_index", relative_position_index(window))
        if token_projection == "linear":
            self.query = nn.Linear(channels, channels, bias=qkv_bias)
            self.key_value = nn.Linear(channels, 2 * channels, bias=qkv_bias)
        else:
            self.query = SeparableConv2d(channels, channels)
            self.key = SeparableConv2d(channels, channels)
            self.value = SeparableConv2d(channels, channels)
        self.attention_dropout = nn.Dropout(attention_dropout)
        self.project = nn.Linear(channels, channels)
        self.dropout = nn.Dropout(dropout)

    def position_bias(self) -> torch.Tensor:
        """heads×w²×w²: the bias added to the attention logits of every window."""
        tokens = self.window * self.window
        return self.position_bias_table[self.position_index.flatten()].view(tokens, tokens, -1).permute(2, 0, 1)

    def _query_key_value(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        count, tokens, channels = windows.shape
        if self.token_projection == "linear":
            query, key_value = self.query(windows), self.key_value(windows)
            key, value = key_value.view(count, tokens, 2, channels).unbind(2)
        else:
            grid = windows.transpose(1, 2).reshape(count, channels, self.window, self.window)
            query, key, value = (projection(grid).flatten(2).transpose(1, 2)
                                 for projection in (self.query, self.key, self.value))
        return query, key, value

    def forward(self, windows: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        count, tokens, channels = windows.shape
        query, key, value = (
            t.reshape(count, tokens, self.heads, -1).transpose(1, 2) for t in self._query_key_value(windows)
        )
        logits = (query * self.scale) @ key.transpose(-2, -1) + self.position_bias()
        if mask is not None:
            per_image = mask.shape[0]
            logits = logits.view(count // per_image, per_image, self.heads, tokens, tokens) + mask[None, :, None]
            logits = logits.view(count, self.heads, tokens, tokens)
        attention = self.attention_dropout(logits.softmax(dim=-1))
        out = (attention @ value).transpose(1, 2).reshape(count, tokens, channels)
        return self.dropout(self.project(out))


class CrossModulatorAttention(nn.Module):
    """Attention from every token of the map to a learned set of tokens (the cross modulator), no bias."""

    def __init__(
        self,
        channels: int,
        *,
        heads: int,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attention_dropout: float = 0.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.heads = heads
        self.scale = qk_scale or (channels // heads) ** -0.5
        self.query = nn.Linear(channels, channels, bias=qkv_bias)
        self.key_value = nn.Linear(channels, 2 * channels, bias=qkv_bias)
        self.attention_dropout = nn.Dropout(attention_dropout)
        self.project = nn.Linear(channels, channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """``tokens`` B×N×C attend to ``memory`` M×C (shared by the batch)."""
        batch, count, channels = tokens.shape
        query = self.query(tokens).view(batch, count, self.heads, -1).transpose(1, 2)
        key, value = self.key_value(memory).view(memory.shape[0], 2, self.heads, -1).permute(1, 2, 0, 3)
        attention = self.attention_dropout(((query * self.scale) @ key.transpose(-2, -1)).softmax(dim=-1))
        out = (attention @ value).transpose(1, 2).reshape(batch, count, channels)
        return self.dropout(self.project(out))


class LocallyEnhancedFeedForward(nn.Module):
    """LeFF: linear up, GELU, depthwise 3×3 conv over the map, GELU, linear down (B×H×W×C in and out).

    ``depthwise_bias=False`` is the published "fastleff" variant, whose compiled depthwise conv has no bias.
    """

    def __init__(self, channels: int, hidden: int, *, depthwise_bias: bool = True) -> None:
        super().__init__()
        self.expand = nn.Linear(channels, hidden)
        self.depthwise = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=depthwise_bias)
        self.project = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = F.gelu(self.expand(x)).permute(0, 3, 1, 2)
        return self.project(F.gelu(self.depthwise(hidden)).permute(0, 2, 3, 1))


class TokenMlp(nn.Module):
    """The plain token MLP: linear up, GELU, dropout, linear down, dropout."""

    def __init__(self, channels: int, hidden: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.expand = nn.Linear(channels, hidden)
        self.project = nn.Linear(hidden, channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.project(self.dropout(F.gelu(self.expand(x)))))


class LeWinBlock(nn.Module):
    """One LeWin transformer block on a B×H×W×C map (H, W multiples of ``window``).

    ``x + attention(norm(x))`` over (shifted) windows, then ``x + mlp(norm(x))``; each branch goes through
    stochastic depth at ``drop_path_rate``. ``modulator`` adds a learned w²×C embedding to every window before
    the attention, and needs ``window == window_size`` (``window`` is the clamped window of this level, the
    modulator is sized by the configured ``window_size``, as published). ``cross_modulator`` first adds a cross
    attention to ``window_size²`` learned tokens. As published, that cross attention reads the
    un-normalised tokens: ``cross_norm`` is kept so the published checkpoints load, but it does not change
    the output. ``token_mlp`` is "leff" (:class:`LocallyEnhancedFeedForward`), "fastleff" (the same without
    the depthwise conv's bias: the published one ran a compiled kernel that has none) or "mlp" / "ffn" (two
    names for the plain MLP).
    """

    def __init__(
        self,
        channels: int,
        *,
        heads: int,
        window: int,
        shift: int = 0,
        window_size: int | None = None,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        drop_path_rate: float = 0.0,
        token_projection: TokenProjection = "linear",
        token_mlp: TokenMlpKind = "leff",
        modulator: bool = False,
        cross_modulator: bool = False,
    ) -> None:
        super().__init__()
        window_size = window if window_size is None else window_size
        if not 0 <= shift < window:
            raise ValueError(f"shift must be in [0, window={window}), got {shift}")
        if token_mlp not in _TOKEN_MLPS:
            raise ValueError(f"token_mlp must be one of {_TOKEN_MLPS}, got {token_mlp!r}")
        if modulator and window != window_size:
            raise ValueError(
                f"the modulator is window_size²×C ({window_size}²) but this level's window is {window} "
                "(its side at img_size is smaller than window_size); raise img_size or turn the modulator off"
            )
        self.window = window
        self.shift = shift
        self.drop_path_rate = drop_path_rate
        if cross_modulator:
            self.cross_modulator = nn.Parameter(torch.empty(window_size * window_size, channels).normal_())
            self.cross_attention = CrossModulatorAttention(
                channels, heads=heads, qkv_bias=qkv_bias, qk_scale=qk_scale,
                attention_dropout=attention_dropout, dropout=dropout,
            )
            self.cross_norm = nn.LayerNorm(channels)
        else:
            self.cross_modulator = None
        self.window_modulator = (
            nn.Parameter(torch.empty(window_size * window_size, channels).normal_()) if modulator else None
        )
        self.attention_norm = nn.LayerNorm(channels)
        self.attention = WindowAttention(
            channels, window=window, heads=heads, qkv_bias=qkv_bias, qk_scale=qk_scale,
            token_projection=token_projection, attention_dropout=attention_dropout, dropout=dropout,
        )
        self.mlp_norm = nn.LayerNorm(channels)
        hidden = int(channels * mlp_ratio)
        if token_mlp in ("leff", "fastleff"):
            self.feedforward: nn.Module = LocallyEnhancedFeedForward(
                channels, hidden, depthwise_bias=token_mlp == "leff"
            )
        else:
            self.feedforward = TokenMlp(channels, hidden, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, channels = x.shape
        if height % self.window or width % self.window:
            raise ValueError(f"a {height}×{width} map is not a multiple of the {self.window}×{self.window} window")
        if self.cross_modulator is not None:
            tokens = x.reshape(batch, height * width, channels)
            x = x + self.cross_attention(tokens, self.cross_modulator).view_as(x)

        shortcut = x
        x = self.attention_norm(x)
        mask = None
        if self.shift:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
            mask = shifted_window_mask(height, width, self.window, self.shift, x.device).to(x.dtype)
        windows = window_partition(x, self.window).reshape(-1, self.window * self.window, channels)
        if self.window_modulator is not None:
            windows = windows + self.window_modulator
        windows = self.attention(windows, mask)
        x = window_merge(windows.view(-1, self.window, self.window, channels), self.window, height, width)
        if self.shift:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        x = shortcut + drop_path(x, self.drop_path_rate, self.training)
        return x + drop_path(self.feedforward(self.mlp_norm(x)), self.drop_path_rate, self.training)


class LeWinStage(nn.Module):
    """A stack of LeWin blocks on a B×C×H×W map (an empty stack is the identity).

    ``gradient_checkpointing`` recomputes each block's activations in the backward pass instead of storing them.
    """

    def __init__(self, blocks: Sequence[LeWinBlock], *, gradient_checkpointing: bool = False) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.gradient_checkpointing = gradient_checkpointing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not len(self.blocks):
            return x
        x = x.permute(0, 2, 3, 1)
        for block in self.blocks:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x.permute(0, 3, 1, 2).contiguous()


def level_window(img_size: int, level: int, window_size: int) -> int:
    """The window of the level at 1/2^level resolution: ``window_size``, or the level's side at ``img_size``
    when that side is not larger (the published clamp)."""
    return min(window_size, img_size >> level)


def lewin_stage(
    channels: int,
    count: int,
    *,
    img_size: int,
    level: int,
    heads: int,
    window_size: int,
    shifted_windows: bool,
    drop_path_rates: Sequence[float],
    gradient_checkpointing: bool = False,
    **block_options: Any,
) -> LeWinStage:
    """``count`` LeWin blocks at resolution 1/2^level, every other one shifted by half a window when allowed."""
    window = level_window(img_size, level, window_size)
    shifts = window < img_size >> level and shifted_windows
    blocks = [
        LeWinBlock(
            channels, heads=heads, window=window, shift=window_size // 2 if shifts and index % 2 else 0,
            window_size=window_size, drop_path_rate=drop_path_rates[index], **block_options,
        )
        for index in range(count)
    ]
    return LeWinStage(blocks, gradient_checkpointing=gradient_checkpointing)


def _drop_path_schedule(depths: Sequence[int], rate: float, encoder_levels: int) -> list[list[float]]:
    """Per-stage stochastic-depth rates, as published: a linear ramp 0 → rate over the encoder blocks, every
    bottleneck block at ``rate``, and the ramp reversed over the decoder blocks."""
    encoder_total = sum(depths[:encoder_levels])
    bottleneck, decoder = depths[encoder_levels], depths[encoder_levels + 1 :]
    if sum(decoder) > encoder_total:
        raise ValueError(
            f"depths {list(depths)}: the decoder has more blocks ({sum(decoder)}) than the encoder "
            f"({encoder_total}); the published drop-path schedule (the encoder's, reversed) has no rate for them"
        )
    ramp = torch.linspace(0, rate, encoder_total, device="cpu").tolist()
    stages, start = [], 0
    for count in depths[:encoder_levels]:
        stages.append(ramp[start : start + count])
        start += count
    stages.append([rate] * bottleneck)
    reverse, start = ramp[::-1], 0
    for count in decoder:
        stages.append(reverse[start : start + count])
        start += count
    return stages


def _size_multiple(img_size: int, window_size: int, levels: int, downsamplings: int) -> int:
    """The side multiple every level's window and every downsampling needs."""
    if img_size >> (levels - 1) < 1:
        raise ValueError(f"img_size must be at least {1 << (levels - 1)} (a pixel at the last level), got {img_size}")
    multiple = 1 << downsamplings
    for level in range(levels):
        multiple = math.lcm(multiple, level_window(img_size, level, window_size) << level)
    return multiple


class Uformer(nn.Module):
    """The Origin Uformer (Wang et al., CVPR 2022): a five-level U-Net of LeWin blocks.

    Channels double per level (C … 16C); each level halves the resolution with a 4×4 stride-2 conv and the
    decoder doubles it with a 2×2 transposed conv, concatenating the encoder skip (so decoder levels run at
    16C, 8C, 4C, 2C). ``depths`` and ``heads`` list the nine stages in U order: four encoder levels (full
    resolution first), the bottleneck, four decoder levels (deepest first). ``modulator`` and
    ``cross_modulator`` apply to the decoder blocks. The input image is added to the output when
    ``in_channels`` is 3 (the published rule). The published defaults: 20.63 M parameters.

    Inputs of any size are reflect-padded to a multiple of :attr:`size_multiple` (16 × the window at the
    defaults: 128) and cropped back; the published code instead requires square inputs of such a side.
    """

    def __init__(
        self,
        *,
        img_size: int = 256,
        in_channels: int = 3,
        out_channels: int = 3,
        width: int = 32,
        depths: Sequence[int] = (2, 2, 2, 2, 2, 2, 2, 2, 2),
        heads: Sequence[int] = (1, 2, 4, 8, 16, 16, 8, 4, 2),
        window_size: int = 8,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        drop_path_rate: float = 0.1,
        token_projection: TokenProjection = "linear",
        token_mlp: TokenMlpKind = "leff",
        shifted_windows: bool = True,
        modulator: bool = False,
        cross_modulator: bool = False,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        depths = _check_counts("depths", depths, 9, minimum=0)
        heads = _check_counts("heads", heads, 9, minimum=1)
        if in_channels == 3 and out_channels != 3:
            raise ValueError(f"out_channels must be 3 for the image residual with 3 input channels, got {out_channels}")
        self.residual = in_channels == 3
        self.size_multiple = _size_multiple(img_size, window_size, 5, 4)
        rates = _drop_path_schedule(depths, drop_path_rate, 4)
        options = dict(
            img_size=img_size, window_size=window_size, shifted_windows=shifted_windows, mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias, qk_scale=qk_scale, dropout=dropout, attention_dropout=attention_dropout,
            token_projection=token_projection, token_mlp=token_mlp, gradient_checkpointing=gradient_checkpointing,
        )
        c = width
        self.stem = nn.Conv2d(in_channels, c, 3, padding=1)
        self.stem_dropout = nn.Dropout(dropout)
        self.encoders = nn.ModuleList(
            lewin_stage(c << level, depths[level], level=level, heads=heads[level], drop_path_rates=rates[level],
                        **options)
            for level in range(4)
        )
        self.downsamples = nn.ModuleList(nn.Conv2d(c << level, c << (level + 1), 4, stride=2, padding=1)
                                         for level in range(4))
        self.bottleneck = lewin_stage(16 * c, depths[4], level=4, heads=heads[4], drop_path_rates=rates[4],
                                      **options)
        # Decoder stage k runs at level 3 − k on 2× the channels of that encoder level (upsampled + skip).
        self.upsamples = nn.ModuleList(
            nn.ConvTranspose2d(c << min(4, 5 - k), c << (3 - k), 2, stride=2) for k in range(4)
        )
        self.decoders = nn.ModuleList(
            lewin_stage(c << (4 - k), depths[5 + k], level=3 - k, heads=heads[5 + k], drop_path_rates=rates[5 + k],
                        modulator=modulator, cross_modulator=cross_modulator, **options)
            for k in range(4)
        )
        self.output = nn.Conv2d(2 * c, out_channels, 3, padding=1)
        for module in self.modules():  # the published initialisation of the linear layers
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"expected a B×C×H×W image, got shape {tuple(x.shape)}")
        padded, (height, width) = pad_to_multiple(x, self.size_multiple)
        y = self.stem_dropout(F.leaky_relu(self.stem(padded), 0.01))
        skips = []
        for encoder, downsample in zip(self.encoders, self.downsamples, strict=True):
            y = encoder(y)
            skips.append(y)
            y = downsample(y)
        y = self.bottleneck(y)
        for upsample, decoder, skip in zip(self.upsamples, self.decoders, reversed(skips), strict=True):
            y = decoder(torch.cat([upsample(y), skip], dim=1))
        y = self.output(y)
        if self.residual:
            y = y + padded
        return y[..., :height, :width].contiguous()


class ConStyleUformer(ConStyleRestorer):
    """ConStyle + the LeWin-block restoration U-Net (published defaults: 4.14 M parameters at inference).

    The ConStyle U-Net (:class:`~irconstyle.models.unet.ConStyleUNet`: widths C, 2C, 3C, bottleneck 4C) with
    LeWin stages, a stem conv with bias and LeakyReLU(0.01), a biased output conv and no refinement blocks.
    ``depths`` and ``heads`` list the seven stages in U order, as published: encoder levels 1–3, bottleneck,
    decoder levels 3, 2, 1. ``modulator`` (on by default) and ``cross_modulator`` apply to the decoder blocks.
    ``contrastive`` adds the momentum encoder and queue for training; ``constyle_options`` go to
    :class:`~irconstyle.models.constyle.ConStyle`.

    Inputs of any size are reflect-padded to a multiple of :attr:`size_multiple` (8 × the window at the
    defaults: 64) and cropped back; the published code instead requires square inputs of such a side.
    """

    def __init__(
        self,
        *,
        img_size: int = 128,
        width: int = 32,
        depths: Sequence[int] = (2, 2, 2, 2, 2, 2, 2),
        heads: Sequence[int] = (1, 2, 4, 8, 8, 4, 2),
        window_size: int = 8,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        drop_path_rate: float = 0.1,
        token_projection: TokenProjection = "linear",
        token_mlp: TokenMlpKind = "leff",
        shifted_windows: bool = True,
        modulator: bool = True,
        cross_modulator: bool = False,
        gradient_checkpointing: bool = False,
        contrastive: bool = False,
        constyle_options: Mapping[str, Any] | None = None,
    ) -> None:
        depths = _check_counts("depths", depths, 7, minimum=0)
        heads = _check_counts("heads", heads, 7, minimum=1)
        size_multiple = _size_multiple(img_size, window_size, 4, 3)
        rates = _drop_path_schedule(depths, drop_path_rate, 3)
        # Stage name -> index in the U-ordered depths/heads, and resolution level.
        stages = {
            "encoder1": (0, 0), "encoder2": (1, 1), "encoder3": (2, 2), "bottleneck": (3, 3),
            "decoder3": (4, 2), "decoder2": (5, 1), "decoder1": (6, 0),
        }

        def make_blocks(channels: int, count: int, stage: str) -> LeWinStage:
            if stage == "refinement":
                return LeWinStage([])
            index, level = stages[stage]
            decoder = stage.startswith("decoder")
            return lewin_stage(
                channels, count, img_size=img_size, level=level, heads=heads[index], window_size=window_size,
                shifted_windows=shifted_windows, drop_path_rates=rates[index],
                gradient_checkpointing=gradient_checkpointing, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                qk_scale=qk_scale, dropout=dropout, attention_dropout=attention_dropout,
                token_projection=token_projection, token_mlp=token_mlp,
                modulator=modulator and decoder, cross_modulator=cross_modulator and decoder,
            )

        body = ConStyleUNet(
            width=width,
            encoder_blocks=depths[:3],
            bottleneck_blocks=depths[3],
            decoder_blocks=depths[6:3:-1],
            refinement_blocks=0,
            make_blocks=make_blocks,
            adapter_activation="leaky_relu",
            stem_bias=True,
            stem_leaky_slope=0.01,
            output_bias=True,
            size_multiple=size_multiple,
        )
        super().__init__(body, contrastive=contrastive, constyle_options=constyle_options)
