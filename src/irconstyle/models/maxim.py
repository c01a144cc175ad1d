"""MAXIM (multi-axis MLP) blocks, the ConStyle MAXIM U-Net and the Origin MAXIM-1S baseline.

Both networks are single-stage MAXIM U-Nets with three levels and a bottleneck: the image enters at every
level (nearest-downsampled, through a 3×3 conv), each level runs multi-axis gated MLPs (global *grid* mixing
and local *block* mixing) and channel-attention blocks, the encoder outputs of all levels are fused by
cross-gating blocks (coarse to fine, gated by the bottleneck), and the decoder concatenates the three gated
skips resized to its level.

Layout: the U-Nets keep their maps in ``torch.channels_last`` memory, so the conv view (B×C×H×W) and the MLP
view (B×H×W×C) of a map are the same memory. Spatial gating rearranges a map once into tokens whose leading
axis is the mixed position (a grid cell or a position inside a block); the mixing is then a single matrix
product per image, shared by the grid and block branches (:class:`Partition`, :func:`mix_positions`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from irconstyle.models.constyle import ConStyleRestorer, pad_to_multiple, round_up
from irconstyle.models.layers import exporting, onednn_fusable
from irconstyle.models.unet import check_body_inputs, feature_adapter, pixel_shuffle_up, pixel_unshuffle_down

Size = tuple[int, int]
Gelu = Literal["none", "tanh"]  # torch's ``approximate`` argument of GELU
LEVELS = 3  # U-Net levels above the bottleneck (the published MAXIM-1S depth)


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    """B×C×H×W -> B×H×W×C view (free for channels-last maps)."""
    return x.permute(0, 2, 3, 1)


def _nchw(x: torch.Tensor) -> torch.Tensor:
    """B×H×W×C -> B×C×H×W view (a channels-last map when ``x`` is contiguous)."""
    return x.permute(0, 3, 1, 2)


def _pointwise(conv: nn.Conv2d, *parts: torch.Tensor) -> torch.Tensor:
    """A 1×1 conv over the channel concatenation of B×C×H×W ``parts``, returned as a B×H×W×C map.

    Each part meets its own slice of the weight, so the concatenation is never built.
    """
    weight = conv.weight.flatten(1)
    pieces, start = [], 0
    for part in parts:
        pieces.append((_nhwc(part), weight[:, start : start + part.shape[1]]))
        start += part.shape[1]
    if start != weight.shape[1]:
        raise ValueError(f"a 1×1 conv over {weight.shape[1]} channels got parts of {[p.shape[1] for p in parts]}")
    return _project(pieces, conv.bias)


def _linear_rows(linear: nn.Linear, rows: slice) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Weight and bias of the output features ``rows`` of ``linear`` (views, no copy)."""
    return linear.weight[rows], None if linear.bias is None else linear.bias[rows]


def _project(
    parts: Sequence[tuple[torch.Tensor, torch.Tensor]],
    bias: torch.Tensor | None,
    residual: torch.Tensor | None = None,
    dropout: nn.Dropout | None = None,
) -> torch.Tensor:
    """``residual + dropout(Σ xᵢ·Wᵢᵀ + bias)`` for B×…×Cᵢ maps, accumulated inside the matrix products.

    Splitting a projection over concatenated inputs into per-input weights ``Wᵢ`` spares the concatenation.
    """
    first, weight = parts[0]
    shape = (*first.shape[:-1], weight.shape[0])
    drop = dropout is not None and dropout.training and dropout.p > 0
    if residual is not None and not drop:
        out = torch.addmm(residual.reshape(-1, shape[-1]), first.reshape(-1, first.shape[-1]), weight.t())
    else:
        out = first.reshape(-1, first.shape[-1]) @ weight.t()
    for x, weight in parts[1:]:  # in-place ops escape autocast: match the dtype of ``out`` explicitly
        out = out.addmm_(x.reshape(-1, x.shape[-1]).to(out.dtype), weight.t().to(out.dtype))
    if bias is not None:
        out = out.add_(bias)
    out = out.view(shape)
    if drop:
        out = dropout(out)
        return out if residual is None else residual + out
    return out


def _layer_norm(channels: int) -> nn.LayerNorm:
    return nn.LayerNorm(channels, eps=1e-6)


def _linear_gelu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, approximate: Gelu) -> torch.Tensor:
    """``gelu(x·Wᵀ + b)``; the tanh GELU runs as a oneDNN matrix product with the GELU fused in (one pass
    over the output instead of three) wherever no gradient is needed.

    The exact GELU keeps torch's kernels, so the models that use it keep their bits.
    """
    if approximate == "tanh" and onednn_fusable(x, weight):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", [], "tanh")
    return F.gelu(F.linear(x, weight, bias), approximate=approximate)


@dataclass(frozen=True)
class Partition:
    """How an H×W map is cut into tokens for spatial mixing.

    ``grid``: a fixed ``size`` grid of cells, mixing across cells (global, dilated mixing; the cell size follows
    the map). ``block``: fixed ``size`` blocks, mixing inside each block (local mixing; the block count follows
    the map). Tokens are B×M×R×C with M the mixed positions (``size[0]·size[1]``) and R the rest. A map seen
    through :meth:`split` (B×oh×ih×ow×iw×C, a view) and tokens seen through :meth:`from_tokens` line up, so
    elementwise ops between them need no copy back.
    """

    kind: Literal["grid", "block"]
    size: Size

    @property
    def positions(self) -> int:
        return self.size[0] * self.size[1]

    def _factors(self, height: int, width: int) -> tuple[int, int, int, int]:
        rows, cols = self.size
        if height % rows or width % cols:
            raise ValueError(f"a {height}×{width} map cannot be cut into a {rows}×{cols} {self.kind}")
        if self.kind == "grid":
            return rows, height // rows, cols, width // cols
        return height // rows, rows, width // cols, cols

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """B×H×W×C -> B×oh×ih×ow×iw×C view (oh×ow cells of ih×iw pixels)."""
        outer_h, inner_h, outer_w, inner_w = self._factors(x.shape[1], x.shape[2])
        return x.unflatten(2, (outer_w, inner_w)).unflatten(1, (outer_h, inner_h))

    def to_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """B×H×W×C (any strides) -> contiguous B×M×R×C tokens (the one copy of a gating step)."""
        order = (0, 1, 3, 2, 4, 5) if self.kind == "grid" else (0, 2, 4, 1, 3, 5)
        return self.split(x).permute(order).reshape(x.shape[0], self.positions, -1, x.shape[-1])

    def from_tokens(self, tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """B×M×R×C tokens -> the B×oh×ih×ow×iw×C view that :meth:`split` gives of the map (no copy)."""
        outer_h, inner_h, outer_w, inner_w = self._factors(height, width)
        batch, channels = tokens.shape[0], tokens.shape[-1]
        if self.kind == "grid":
            return tokens.view(batch, outer_h, outer_w, inner_h, inner_w, channels).permute(0, 1, 3, 2, 4, 5)
        return tokens.view(batch, inner_h, inner_w, outer_h, outer_w, channels).permute(0, 3, 1, 4, 2, 5)


def mix_positions(tokens: torch.Tensor, mix: nn.Linear, offset: float = 0.0) -> torch.Tensor:
    """Apply ``mix`` (an M×M linear map) across the positions of B×M×R×C tokens, plus ``offset``."""
    batch, positions, rest, channels = tokens.shape
    flat = tokens.reshape(batch, positions, rest * channels)
    if mix.bias is None:
        shift = torch.full((1, positions, 1), offset, dtype=flat.dtype, device=flat.device)
    else:
        shift = (mix.bias + offset).view(1, positions, 1)
    mixed = torch.baddbmm(shift, mix.weight.expand(batch, positions, positions), flat)
    return mixed.view(batch, positions, rest, channels)


class GatedMlp(nn.Module):
    """A gMLP layer on a B×H×W×C map (MAXIM's grid / block gMLP, by ``partition``), with a residual.

    LayerNorm, expansion by ``factor``, GELU, then spatial gating: the expanded channels split into (u, v),
    v is normalised and mixed across the partition's positions, and the result is ``u · (v + 1)``; a linear
    projection brings it back to ``channels``. The position mixing always has a bias, as published.
    """

    def __init__(
        self, channels: int, partition: Partition, *, factor: int = 2, bias: bool = True, gelu: Gelu = "none"
    ) -> None:
        super().__init__()
        hidden = channels * factor
        self.gelu = gelu
        self.partition = partition
        self.norm = _layer_norm(channels)
        self.expand = nn.Linear(channels, hidden, bias=bias)
        self.gate_norm = _layer_norm(hidden // 2)
        self.token_mix = nn.Linear(partition.positions, partition.positions)
        self.project = nn.Linear(hidden // 2, channels, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.expand.out_features // 2
        normed = self.norm(x)
        u = _linear_gelu(normed, *_linear_rows(self.expand, slice(None, half)), self.gelu)
        v = _linear_gelu(normed, *_linear_rows(self.expand, slice(half, None)), self.gelu)
        gate = mix_positions(self.partition.to_tokens(self.gate_norm(v)), self.token_mix, offset=1.0)
        gated = self.partition.split(u) * self.partition.from_tokens(gate, x.shape[1], x.shape[2])
        return _project([(gated.reshape(u.shape), self.project.weight)], self.project.bias, residual=x)


class MultiAxisGatedMlp(nn.Module):
    """Multi-axis gated MLP block (MAB) on a B×H×W×C map, with a residual.

    After LayerNorm, expansion by ``input_factor`` and GELU, half of the channels go through a grid gMLP
    (global mixing across a ``grid_size`` grid) and half through a block gMLP (local mixing inside
    ``block_size`` blocks); a linear projection merges them.
    """

    def __init__(
        self,
        channels: int,
        *,
        block_size: Size,
        grid_size: Size,
        input_factor: int = 2,
        block_factor: int = 2,
        grid_factor: int = 2,
        bias: bool = True,
        dropout: float = 0.0,
        gelu: Gelu = "none",
    ) -> None:
        super().__init__()
        hidden = channels * input_factor
        self.gelu = gelu
        self.norm = _layer_norm(channels)
        self.expand = nn.Linear(channels, hidden, bias=bias)
        self.grid = GatedMlp(hidden // 2, Partition("grid", grid_size), factor=grid_factor, bias=bias, gelu=gelu)
        self.block = GatedMlp(hidden // 2, Partition("block", block_size), factor=block_factor, bias=bias, gelu=gelu)
        self.project = nn.Linear(hidden, channels, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.expand.out_features // 2
        first, second = slice(None, half), slice(half, None)
        normed = self.norm(x)
        grid = self.grid(_linear_gelu(normed, *_linear_rows(self.expand, first), self.gelu))
        block = self.block(_linear_gelu(normed, *_linear_rows(self.expand, second), self.gelu))
        weight = self.project.weight
        parts = [(grid, weight[:, first]), (block, weight[:, second])]
        return _project(parts, self.project.bias, residual=x, dropout=self.dropout)


class CrossGatingWeights(nn.Module):
    """The gating signal of a cross-gating block: LayerNorm, expansion ×2, GELU, then half the channels mixed
    across a grid and half inside blocks (plain linear mixing, no gating), projected back to ``channels``."""

    def __init__(
        self,
        channels: int,
        *,
        block_size: Size,
        grid_size: Size,
        bias: bool = True,
        dropout: float = 0.0,
        gelu: Gelu = "none",
    ) -> None:
        super().__init__()
        self.gelu = gelu
        self.grid_partition = Partition("grid", grid_size)
        self.block_partition = Partition("block", block_size)
        self.norm = _layer_norm(channels)
        self.expand = nn.Linear(channels, 2 * channels, bias=bias)
        self.grid_mix = nn.Linear(self.grid_partition.positions, self.grid_partition.positions, bias=bias)
        self.block_mix = nn.Linear(self.block_partition.positions, self.block_partition.positions, bias=bias)
        self.project = nn.Linear(2 * channels, channels, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.expand.out_features // 2
        first, second = slice(None, half), slice(half, None)
        normed = self.norm(x)
        parts = []
        branches = ((self.grid_partition, self.grid_mix, first), (self.block_partition, self.block_mix, second))
        for partition, mix, rows in branches:
            branch = _linear_gelu(normed, *_linear_rows(self.expand, rows), self.gelu)
            mixed = partition.from_tokens(mix_positions(partition.to_tokens(branch), mix), x.shape[1], x.shape[2])
            parts.append((mixed.reshape(branch.shape), self.project.weight[:, rows]))
        return _project(parts, self.project.bias, dropout=self.dropout)


class CrossGatingBlock(nn.Module):
    """Cross-gating block (CGB): two maps gate each other with multi-axis gating signals.

    ``x`` (``x_channels``) is projected to ``channels``; ``y`` is first upsampled ×2 by a 2×2 transposed conv
    when ``y_channels`` is given. Returns ``(x_out, y_out)``, both ``channels`` wide at ``x``'s resolution:
    ``y_out = y + W_y(ŷ ⊙ g(x̂))`` and ``x_out = x + y_out + W_x(x̂ ⊙ g(ŷ))``, where ^ is LayerNorm → linear →
    GELU and g is :class:`CrossGatingWeights`.
    """

    def __init__(
        self,
        x_channels: int,
        channels: int,
        *,
        y_channels: int | None,
        block_size: Size,
        grid_size: Size,
        bias: bool = True,
        dropout: float = 0.0,
        gelu: Gelu = "none",
    ) -> None:
        super().__init__()
        self.gelu = gelu
        gating = {"block_size": block_size, "grid_size": grid_size, "bias": bias, "dropout": dropout, "gelu": gelu}
        self.upsample_y = (
            None if y_channels is None else nn.ConvTranspose2d(y_channels, channels, 2, stride=2, bias=bias)
        )
        self.proj_x = nn.Conv2d(x_channels, channels, 1, bias=bias)
        self.proj_y = nn.Conv2d(channels, channels, 1, bias=bias)
        self.norm_x = _layer_norm(channels)
        self.in_x = nn.Linear(channels, channels, bias=bias)
        self.gate_x = CrossGatingWeights(channels, **gating)
        self.norm_y = _layer_norm(channels)
        self.in_y = nn.Linear(channels, channels, bias=bias)
        self.gate_y = CrossGatingWeights(channels, **gating)
        self.out_y = nn.Linear(channels, channels, bias=bias)
        self.out_x = nn.Linear(channels, channels, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x_parts: Sequence[torch.Tensor], y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x_parts``: B×C×H×W maps whose channel concatenation is ``x`` (it is never built)."""
        if self.upsample_y is not None:
            y = self.upsample_y(y)
        shortcut_x = _pointwise(self.proj_x, *x_parts)
        shortcut_y = _pointwise(self.proj_y, y)
        x = _linear_gelu(self.norm_x(shortcut_x), self.in_x.weight, self.in_x.bias, self.gelu)
        y = _linear_gelu(self.norm_y(shortcut_y), self.in_y.weight, self.in_y.bias, self.gelu)
        gate_from_x, gate_from_y = self.gate_x(x), self.gate_y(y)
        y = _project([(y * gate_from_x, self.out_y.weight)], self.out_y.bias, shortcut_y, self.dropout)
        x = _project([(x * gate_from_y, self.out_x.weight)], self.out_x.bias, shortcut_x + y, self.dropout)
        return _nchw(x), _nchw(y)


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation on a B×H×W×C map: global mean, 1×1 conv down by ``reduction``, ReLU, 1×1 conv
    up, sigmoid, rescale; ``forward(x, residual)`` returns ``residual + attention(x)`` in one pass."""

    def __init__(self, channels: int, *, reduction: int = 4, bias: bool = True) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(channels, channels // reduction, 1, bias=bias)
        self.excite = nn.Conv2d(channels // reduction, channels, 1, bias=bias)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        squeezed = F.relu(F.linear(x.mean(dim=(1, 2)), self.squeeze.weight.flatten(1), self.squeeze.bias))
        weights = torch.sigmoid(F.linear(squeezed, self.excite.weight.flatten(1), self.excite.bias))
        return torch.addcmul(residual, x, weights[:, None, None, :])


class ResidualChannelAttention(nn.Module):
    """RCAB on a B×H×W×C map: LayerNorm, 3×3 conv, leaky ReLU, 3×3 conv, channel attention, residual.

    The channel attention always has biases, as published.
    """

    def __init__(self, channels: int, *, reduction: int = 4, leaky_slope: float = 0.2, bias: bool = True) -> None:
        super().__init__()
        self.leaky_slope = leaky_slope
        self.norm = _layer_norm(channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=bias)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=bias)
        self.attention = ChannelAttention(channels, reduction=reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu_(self.conv1(_nchw(self.norm(x))), self.leaky_slope)
        return self.attention(_nhwc(self.conv2(y)), residual=x)


class ResidualDenseChannelAttention(nn.Module):
    """RDCAB on a B×H×W×C map: LayerNorm, channel MLP (linear, GELU, linear), channel attention, residual."""

    def __init__(
        self, channels: int, *, reduction: int = 4, bias: bool = True, dropout: float = 0.0, gelu: Gelu = "none"
    ) -> None:
        super().__init__()
        self.gelu = gelu
        self.norm = _layer_norm(channels)
        self.fc1 = nn.Linear(channels, channels, bias=bias)
        self.fc2 = nn.Linear(channels, channels, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.attention = ChannelAttention(channels, reduction=reduction, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = _linear_gelu(self.norm(x), self.fc1.weight, self.fc1.bias, self.gelu)
        return self.attention(self.fc2(self.dropout(hidden)), residual=x)


@dataclass(frozen=True)
class MixingOptions:
    """The settings every MAXIM block shares (the authors' constructor arguments of the same meaning)."""

    bias: bool = True
    leaky_slope: float = 0.2
    multi_axis_mlp: bool = True  # run the MABs of encoder/decoder levels (the bottleneck always runs them)
    input_factor: int = 2
    block_factor: int = 2
    grid_factor: int = 2
    reduction: int = 4
    dropout: float = 0.0
    gelu: Gelu = "none"  # "tanh": GELU's tanh approximation, Flax's default, which Google's MAXIM weights use

    def mab(self, channels: int, block_size: Size, grid_size: Size, dropout: float) -> MultiAxisGatedMlp:
        return MultiAxisGatedMlp(
            channels,
            block_size=block_size,
            grid_size=grid_size,
            input_factor=self.input_factor,
            block_factor=self.block_factor,
            grid_factor=self.grid_factor,
            bias=self.bias,
            dropout=dropout,
            gelu=self.gelu,
        )


class LevelBlock(nn.Module):
    """One MAXIM U-Net level (the authors' UNetEncoderBlock, used by encoder and decoder levels alike).

    1×1 input projection, then [MAB → RCAB] × 2 on the B×H×W×C view, plus a long residual.

    ``cross_gating`` says what happens to the block's cross-gating block, which only multi-stage MAXIM runs:
    ``"unused"`` (the IRConStyle checkpoints: it sits in every published checkpoint and parameter count, so it
    is kept as ``unused_cross_gating`` and never run; likewise ``unused_downsample``, the strided conv of the
    Origin decoders), ``"absent"``, or ``"run"``: the block's output is cross-gated by the ``gate`` map
    passed to :meth:`forward` (the previous stage's encoder + decoder maps of this level).
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        *,
        block_size: Size,
        grid_size: Size,
        options: MixingOptions,
        unused_downsample: bool = False,
        cross_gating: Literal["unused", "absent", "run"] = "unused",
    ) -> None:
        super().__init__()
        self.run_multi_axis = options.multi_axis_mlp
        self.input_proj = nn.Conv2d(in_channels, channels, 1, bias=options.bias)
        self.multi_axis = nn.ModuleList(
            options.mab(channels, block_size, grid_size, options.dropout) for _ in range(2)
        )
        self.channel_attention = nn.ModuleList(
            ResidualChannelAttention(
                channels, reduction=options.reduction, leaky_slope=options.leaky_slope, bias=options.bias
            )
            for _ in range(2)
        )
        if cross_gating not in ("unused", "absent", "run"):
            raise ValueError(f"cross_gating must be 'unused', 'absent' or 'run', got {cross_gating!r}")
        if cross_gating != "absent":
            gating = CrossGatingBlock(
                channels,
                channels,
                y_channels=None,
                block_size=block_size,
                grid_size=grid_size,
                bias=options.bias,
                dropout=options.dropout,
                gelu=options.gelu,
            )
            if cross_gating == "run":
                self.cross_gating = gating
            else:
                self.unused_cross_gating = gating
        if unused_downsample:
            self.unused_downsample = nn.Conv2d(channels, channels, 4, stride=2, padding=1)

    def forward(self, *parts: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        """``parts``: B×C×H×W maps whose channel concatenation is the block's input; ``gate``: the map that
        cross-gates the output (required exactly when the block was built with ``cross_gating="run"``)."""
        gating = getattr(self, "cross_gating", None)
        if (gate is None) != (gating is None):
            raise ValueError("a gate map must be given exactly to a level block built with cross_gating='run'")
        shortcut = _pointwise(self.input_proj, *parts)
        y = shortcut
        for mab, rcab in zip(self.multi_axis, self.channel_attention, strict=True):
            if self.run_multi_axis:
                y = mab(y)
            y = rcab(y)
        out = _nchw(y.add_(shortcut))
        if gating is not None:
            out = gating([out], gate)[0]
        return out


class BottleneckBlock(nn.Module):
    """MAXIM bottleneck block: 1×1 input projection (always with bias, as published), [MAB → RDCAB] × 2,
    plus a long residual. Its MABs run without dropout and its RDCABs with reduction 4, as published."""

    def __init__(self, channels: int, *, block_size: Size, grid_size: Size, options: MixingOptions) -> None:
        super().__init__()
        self.input_proj = nn.Conv2d(channels, channels, 1)
        self.multi_axis = nn.ModuleList(options.mab(channels, block_size, grid_size, 0.0) for _ in range(2))
        self.channel_attention = nn.ModuleList(
            ResidualDenseChannelAttention(channels, bias=options.bias, dropout=options.dropout, gelu=options.gelu)
            for _ in range(2)
        )

    def forward(self, *parts: torch.Tensor) -> torch.Tensor:
        """``parts``: B×C×H×W maps whose channel concatenation is the block's input."""
        shortcut = _pointwise(self.input_proj, *parts)
        y = shortcut
        for mab, rdcab in zip(self.multi_axis, self.channel_attention, strict=True):
            y = rdcab(mab(y))
        return _nchw(y.add_(shortcut))


@functools.lru_cache(maxsize=64)
def _resize_matrix(size: int, new_size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The new_size×size matrix of the published 1-D resize (bilinear, antialiased), read off the identity.

    Each basis vector is resized as a 1×size image (resizing along H with W = 1 gives wrong antialiased
    weights in torch 2.13). Built outside inference mode so that the cached matrix also serves autograd.
    """
    with torch.inference_mode(False):
        identity = torch.eye(size, dtype=torch.float64).view(1, size, 1, size)
        columns = F.interpolate(identity, size=(1, new_size), mode="bilinear", antialias=True)
        return columns[0, :, 0, :].t().to(dtype=dtype, device=device).contiguous()


def resize(x: torch.Tensor, scale: float) -> torch.Tensor:
    """The published resize of a B×C×H×W map to ``int(H·scale)×int(W·scale)``: bilinear, antialiased.

    Computed as ``R_h · X · R_wᵀ`` on the B×H×W×C view with the exact 1-D resize matrices: the same weights as
    ``F.interpolate(..., antialias=True)``, as two matrix products, which CPUs run far better than the antialiased
    interpolation kernel. Returns a channels-last map.
    """
    if scale == 1:
        return x
    height, width = x.shape[-2:]
    if exporting():  # the cached matrices are built for one size; exported graphs must serve every size
        # the scales are powers of two: integer sizes keep the exporter's shape arithmetic exact
        size = (height * round(scale), width * round(scale)) if scale > 1 else (
            height // round(1 / scale), width // round(1 / scale))
        return F.interpolate(x, size=size, mode="bilinear", antialias=True)
    rows = _resize_matrix(height, int(height * scale), x.dtype, x.device)
    cols = _resize_matrix(width, int(width * scale), x.dtype, x.device)
    nhwc = _nhwc(x).contiguous()
    resized = torch.matmul(rows, nhwc.flatten(2))  # B×H'×(W·C)
    resized = torch.matmul(cols, resized.view(-1, width, nhwc.shape[-1]))  # (B·H')×W'×C
    return _nchw(resized.view(x.shape[0], rows.shape[0], cols.shape[0], -1))


class Resample(nn.Module):
    """Bring a map from one U-Net level to another: :func:`resize` by ``scale``, with an optional 1×1
    projection to ``out_channels``.

    Resize and projection commute (the resize is a per-channel linear map whose weights sum to one), so the
    projection runs wherever it is cheaper: first when it reduces the channels, after a downscale otherwise.
    """

    def __init__(self, in_channels: int, out_channels: int | None, *, scale: float, bias: bool) -> None:
        super().__init__()
        self.scale = scale
        self.proj = None if out_channels is None else nn.Conv2d(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.proj is None:
            return resize(x, self.scale)
        if self.proj.out_channels < self.proj.in_channels or self.scale > 1:
            return resize(_nchw(_pointwise(self.proj, x)), self.scale)
        return _nchw(_pointwise(self.proj, resize(x, self.scale)))


def nearest_downsample(image: torch.Tensor, level: int) -> torch.Tensor:
    """The published nearest-neighbour pyramid: pixel ``2^level·i + 2^(level−1)`` along each axis."""
    if level == 0:
        return image
    step = 2**level
    height, width = image.shape[-2] // step, image.shape[-1] // step
    return image[:, :, step // 2 :: step, step // 2 :: step][:, :, :height, :width]


def _pair(value: Sequence[int]) -> Size:
    pair = tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"expected a (height, width) pair of positive sizes, got {value!r}")
    return pair  # type: ignore[return-value]


@dataclass(frozen=True)
class Partitioning:
    """Block and grid sizes per level, as the published constructors derive them.

    Levels below ``high_res_levels`` use the high-resolution sizes; the others use ``block_size_low_res`` for
    both block *and* grid (a quirk of the published code, kept so that checkpoints fit);
    ``grid_size_low_res`` only sets the bottleneck's grid.
    """

    high_res_levels: int
    block_size_high_res: Size
    block_size_low_res: Size
    grid_size_high_res: Size
    grid_size_low_res: Size

    def level(self, level: int) -> dict[str, Size]:
        """``block_size`` and ``grid_size`` of a level (0 = full resolution)."""
        if level < self.high_res_levels:
            return {"block_size": self.block_size_high_res, "grid_size": self.grid_size_high_res}
        return {"block_size": self.block_size_low_res, "grid_size": self.block_size_low_res}

    @property
    def bottleneck(self) -> dict[str, Size]:
        return {"block_size": self.block_size_low_res, "grid_size": self.grid_size_low_res}

    @property
    def size_multiple(self) -> int:
        """The smallest multiple of which H and W must be: every level's partitions must tile its map."""
        multiples = [8]  # three ×2 downsamplings
        for level, sizes in [*((level, self.level(level)) for level in range(LEVELS)), (LEVELS, self.bottleneck)]:
            multiples += [2**level * side for size in sizes.values() for side in size]
        return math.lcm(*multiples)


class _MaximUNet(nn.Module):
    """The single-stage MAXIM U-Net flow shared by ConStyleMaxim's body and the Origin MAXIM-1S.

    Subclasses build the modules, indexed by level (0 = full resolution):
    ``input_convs[l]`` (image at level l), ``encoders[l]``, ``downsamples[l]`` (level l -> l+1),
    ``bottleneck``, ``gating_inputs[l][s]`` (encoder output of level s -> level l) and ``cross_gating[l]``,
    ``decoder_inputs[l][s]`` (gated skip of level s -> level l), ``upsamples[l]`` (into level l),
    ``decoders[l]`` and ``output``.
    """

    input_convs: nn.ModuleList
    encoders: nn.ModuleList
    downsamples: nn.ModuleList
    bottleneck: nn.Sequential
    gating_inputs: nn.ModuleList
    cross_gating: nn.ModuleList
    decoder_inputs: nn.ModuleList
    upsamples: nn.ModuleList
    decoders: nn.ModuleList
    output: nn.Conv2d
    size_multiple: int

    def _fuse_latent(self, x: torch.Tensor, latent: torch.Tensor | None) -> torch.Tensor:
        return x

    def _restore(
        self, image: torch.Tensor, level_maps: Sequence[torch.Tensor] | None, latent: torch.Tensor | None
    ) -> torch.Tensor:
        """Run the U-Net; ``level_maps[l]`` (if any) joins the input of level l+1 after downsampling.

        Concatenations that feed a 1×1 conv are passed on as lists of parts (see :func:`_pointwise`).
        """
        image = image.contiguous(memory_format=torch.channels_last)
        scales = [conv(nearest_downsample(image, level)) for level, conv in enumerate(self.input_convs)]

        encoded = []
        parts = [scales[0], scales[0]]
        for level, encoder in enumerate(self.encoders):
            encoded.append(encoder(*parts))
            parts = [self.downsamples[level](encoded[-1])]
            if level_maps is not None:
                parts.append(level_maps[level])
            if level + 1 < LEVELS:
                parts.append(scales[level + 1])
        for block in self.bottleneck:
            parts = [block(*parts)]
        x = self._fuse_latent(parts[0], latent)

        gated: dict[int, torch.Tensor] = {}
        signal = x
        for level in reversed(range(LEVELS)):  # coarse to fine, each gated by the previous one's y output
            inputs = [resample(encoded[source]) for source, resample in enumerate(self.gating_inputs[level])]
            gated[level], signal = self.cross_gating[level](inputs, signal)

        for level in reversed(range(LEVELS)):
            resamplers = self.decoder_inputs[level]
            skips = [resamplers[source](gated[source]) for source in reversed(range(LEVELS))]  # coarsest first
            x = self.decoders[level](self.upsamples[level](x), *skips)
        return (self.output(x) + image).contiguous()

    @staticmethod
    def _check_image(image: torch.Tensor) -> None:
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"expected a B×3×H×W image, got shape {tuple(image.shape)}")


def _configure(
    *,
    out_channels: int,
    bias: bool,
    leaky_slope: float,
    multi_axis_mlp: bool,
    high_res_levels: int,
    block_size_high_res: Sequence[int],
    block_size_low_res: Sequence[int],
    grid_size_high_res: Sequence[int],
    grid_size_low_res: Sequence[int],
    block_mlp_factor: int,
    grid_mlp_factor: int,
    input_projection_factor: int,
    channel_reduction: int,
    dropout: float,
) -> tuple[Partitioning, MixingOptions]:
    """Validate the constructor arguments both MAXIM models share and group them."""
    if out_channels != 3:
        raise ValueError(
            f"out_channels must be 3 (the output is a residual added to the RGB input), got {out_channels}"
        )
    partitioning = Partitioning(
        high_res_levels,
        _pair(block_size_high_res),
        _pair(block_size_low_res),
        _pair(grid_size_high_res),
        _pair(grid_size_low_res),
    )
    options = MixingOptions(
        bias=bias,
        leaky_slope=leaky_slope,
        multi_axis_mlp=multi_axis_mlp,
        input_factor=input_projection_factor,
        block_factor=block_mlp_factor,
        grid_factor=grid_mlp_factor,
        reduction=channel_reduction,
        dropout=dropout,
    )
    return partitioning, options


class ConStyleMaximBody(_MaximUNet):
    """The ConStyle MAXIM U-Net: ``forward(image, latent_q, features) -> restored image``.

    Widths f, 2f, 3f at the three levels and 4f at the bottleneck: each pixel-unshuffle downsampling
    concatenates one of ConStyle's maps (1×1 adapter to f channels). The bottleneck output is modulated by the
    latent (``concat[x, x ⊙ W·q]`` -> 1×1 conv to 3f); the cross-gating blocks and gated skips are f wide.
    """

    def __init__(
        self,
        *,
        features: int,
        bottleneck_blocks: int,
        partitioning: Partitioning,
        options: MixingOptions,
        latent_dim: int = 128,
        feature_channels: Sequence[int] = (32, 64, 128),
    ) -> None:
        super().__init__()
        f, bias = features, options.bias
        widths = (f, 2 * f, 3 * f)
        self.size_multiple = partitioning.size_multiple
        self.input_convs = nn.ModuleList(nn.Conv2d(3, f, 3, padding=1, bias=bias) for _ in range(LEVELS))
        self.feature_adapters = nn.ModuleList(feature_adapter(n, f, "leaky_relu") for n in feature_channels)
        self.encoders = nn.ModuleList(
            LevelBlock(in_channels, width, **partitioning.level(level), options=options)
            for level, (in_channels, width) in enumerate(zip((2 * f, 3 * f, 4 * f), widths, strict=True))
        )
        self.downsamples = nn.ModuleList(pixel_unshuffle_down(width) for width in widths)
        self.bottleneck = nn.Sequential(
            *(BottleneckBlock(4 * f, **partitioning.bottleneck, options=options) for _ in range(bottleneck_blocks))
        )
        self.latent_projection = nn.Linear(latent_dim, 4 * f)
        self.latent_fusion = nn.Conv2d(8 * f, 3 * f, 1, bias=False)

        # Cross gating: level-0 outputs are only resized, the others projected to f channels.
        self.gating_inputs = nn.ModuleList(
            nn.ModuleList(
                Resample(widths[source], None if source == 0 else f, scale=2.0 ** (source - level), bias=bias)
                for source in range(LEVELS)
            )
            for level in range(LEVELS)
        )
        self.cross_gating = nn.ModuleList(
            CrossGatingBlock(
                3 * f,
                f,
                y_channels=3 * f if level == LEVELS - 1 else f,
                **partitioning.level(level),
                bias=bias,
                dropout=options.dropout,
            )
            for level in range(LEVELS)
        )
        self.decoder_inputs = nn.ModuleList(
            nn.ModuleList(
                Resample(f, None, scale=2.0 ** (source - level), bias=bias) for source in range(LEVELS)
            )
            for level in range(LEVELS)
        )
        self.upsamples = nn.ModuleList(pixel_shuffle_up(width) for width in (2 * f, 3 * f, 3 * f))
        self.decoders = nn.ModuleList(
            LevelBlock(in_channels, width, **partitioning.level(level), options=options)
            for level, (in_channels, width) in enumerate(
                zip((5 * f, 6 * f, 6 * f), (2 * f, 2 * f, 3 * f), strict=True)
            )
        )
        self.output = nn.Conv2d(2 * f, 3, 3, padding=1, bias=bias)

    def _fuse_latent(self, x: torch.Tensor, latent: torch.Tensor | None) -> torch.Tensor:
        modulation = self.latent_projection(latent)[:, :, None, None]
        return _nchw(_pointwise(self.latent_fusion, x, x * modulation))

    def forward(
        self, image: torch.Tensor, latent_q: torch.Tensor, features: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        self._check_image(image)
        check_body_inputs(image, latent_q, features, self.size_multiple)
        maps = [
            adapter(feature.contiguous(memory_format=torch.channels_last))
            for adapter, feature in zip(self.feature_adapters, features, strict=True)
        ]
        return self._restore(image, maps, latent_q)


class ConStyleMaxim(ConStyleRestorer):
    """ConStyle + the MAXIM U-Net (MLP), paper size by default: ``model(image) -> restored image``.

    Keyword arguments mirror the authors' ``ConStyleMaxim`` (see :mod:`irconstyle.models.official`). Inputs of
    any size are reflect-padded to a multiple of ``size_multiple`` (64 by default: the 16×16 / 8×8 block and
    grid partitions down to the 1/8 bottleneck) and cropped back.
    """

    def __init__(
        self,
        *,
        features: int = 32,
        bottleneck_blocks: int = 2,
        bias: bool = False,
        leaky_slope: float = 0.2,
        multi_axis_mlp: bool = True,
        high_res_levels: int = 2,
        block_size_high_res: Sequence[int] = (16, 16),
        block_size_low_res: Sequence[int] = (8, 8),
        grid_size_high_res: Sequence[int] = (16, 16),
        grid_size_low_res: Sequence[int] = (8, 8),
        block_mlp_factor: int = 2,
        grid_mlp_factor: int = 2,
        input_projection_factor: int = 2,
        channel_reduction: int = 4,
        out_channels: int = 3,
        dropout: float = 0.0,
        contrastive: bool = False,
        constyle_options: dict[str, Any] | None = None,
    ) -> None:
        if features < 4 or features % 4:
            raise ValueError(f"features must be a positive multiple of 4 (pixel-unshuffle), got {features}")
        if bottleneck_blocks < 1:
            raise ValueError(f"bottleneck_blocks must be at least 1, got {bottleneck_blocks}")
        partitioning, options = _configure(
            out_channels=out_channels,
            bias=bias,
            leaky_slope=leaky_slope,
            multi_axis_mlp=multi_axis_mlp,
            high_res_levels=high_res_levels,
            block_size_high_res=block_size_high_res,
            block_size_low_res=block_size_low_res,
            grid_size_high_res=grid_size_high_res,
            grid_size_low_res=grid_size_low_res,
            block_mlp_factor=block_mlp_factor,
            grid_mlp_factor=grid_mlp_factor,
            input_projection_factor=input_projection_factor,
            channel_reduction=channel_reduction,
            dropout=dropout,
        )
        body = ConStyleMaximBody(
            features=features, bottleneck_blocks=bottleneck_blocks, partitioning=partitioning, options=options
        )
        super().__init__(body, contrastive=contrastive, constyle_options=constyle_options)
        self.to(memory_format=torch.channels_last)  # conv weights in the layout the maps use


def _add_gating_and_decoder(
    unet: nn.Module,
    widths: Sequence[int],
    partitioning: Partitioning,
    options: MixingOptions,
    *,
    decoder_cross_gating: Literal["unused", "absent"],
) -> None:
    """The second half of a MAXIM U-Net with level widths f, 2f, 4f, shared by MAXIM-1S and each stage of the
    multi-stage MAXIM: ``gating_inputs``, ``cross_gating``, ``decoder_inputs``, ``upsamples`` and ``decoders``
    (see :class:`_MaximUNet`), created in that order. ``decoder_cross_gating="unused"`` gives the decoders the
    never-run cross-gating block and strided conv of the IRConStyle checkpoints."""
    bias = options.bias
    gated_y = (widths[1], widths[2], widths[2])  # width of the gating signal entering each level's CGB
    unet.gating_inputs = nn.ModuleList(
        nn.ModuleList(
            Resample(widths[source], widths[level], scale=2.0 ** (source - level), bias=bias)
            for source in range(LEVELS)
        )
        for level in range(LEVELS)
    )
    unet.cross_gating = nn.ModuleList(
        CrossGatingBlock(
            3 * widths[level],
            widths[level],
            y_channels=gated_y[level],
            **partitioning.level(level),
            bias=bias,
            dropout=options.dropout,
            gelu=options.gelu,
        )
        for level in range(LEVELS)
    )
    unet.decoder_inputs = nn.ModuleList(
        nn.ModuleList(
            Resample(widths[source], widths[level], scale=2.0 ** (source - level), bias=bias)
            for source in range(LEVELS)
        )
        for level in range(LEVELS)
    )
    unet.upsamples = nn.ModuleList(
        nn.ConvTranspose2d(gated_y[level], widths[level], 2, stride=2, bias=bias) for level in range(LEVELS)
    )
    unet.decoders = nn.ModuleList(
        LevelBlock(
            4 * width,
            width,
            **partitioning.level(level),
            options=options,
            unused_downsample=decoder_cross_gating == "unused",
            cross_gating=decoder_cross_gating,
        )
        for level, width in enumerate(widths)
    )


class Maxim(_MaximUNet):
    """The Origin MAXIM-1S baseline: ``model(image) -> restored image``.

    Widths f, 2f, 4f (strided 4×4 conv down, 2×2 transposed conv up), two bottleneck blocks at 4f, cross-gating
    blocks as wide as their level. Keyword arguments mirror the authors' ``Maxim``; ``depth`` and
    ``input_scales`` (their ``num_supervision_scales``) are fixed at 3 by the published code. Inputs of any
    size are reflect-padded to a multiple of ``size_multiple`` (64 by default) and cropped back.
    """

    def __init__(
        self,
        *,
        features: int = 32,
        depth: int = LEVELS,
        bias: bool = True,
        input_scales: int = LEVELS,
        leaky_slope: float = 0.2,
        multi_axis_mlp: bool = True,
        high_res_levels: int = 2,
        block_size_high_res: Sequence[int] = (16, 16),
        block_size_low_res: Sequence[int] = (8, 8),
        grid_size_high_res: Sequence[int] = (16, 16),
        grid_size_low_res: Sequence[int] = (8, 8),
        block_mlp_factor: int = 2,
        grid_mlp_factor: int = 2,
        input_projection_factor: int = 2,
        channel_reduction: int = 4,
        out_channels: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if depth != LEVELS or input_scales != LEVELS:
            raise ValueError(
                f"MAXIM-1S is defined for depth={LEVELS} and input_scales={LEVELS} (as published), "
                f"got depth={depth}, input_scales={input_scales}"
            )
        partitioning, options = _configure(
            out_channels=out_channels,
            bias=bias,
            leaky_slope=leaky_slope,
            multi_axis_mlp=multi_axis_mlp,
            high_res_levels=high_res_levels,
            block_size_high_res=block_size_high_res,
            block_size_low_res=block_size_low_res,
            grid_size_high_res=grid_size_high_res,
            grid_size_low_res=grid_size_low_res,
            block_mlp_factor=block_mlp_factor,
            grid_mlp_factor=grid_mlp_factor,
            input_projection_factor=input_projection_factor,
            channel_reduction=channel_reduction,
            dropout=dropout,
        )
        self.size_multiple = partitioning.size_multiple
        widths = (features, 2 * features, 4 * features)

        self.input_convs = nn.ModuleList(nn.Conv2d(3, width, 3, padding=1, bias=bias) for width in widths)
        self.encoders = nn.ModuleList(
            LevelBlock(in_factor * features, width, **partitioning.level(level), options=options)
            for level, (in_factor, width) in enumerate(zip((2, 3, 6), widths, strict=True))
        )
        self.downsamples = nn.ModuleList(nn.Conv2d(width, width, 4, stride=2, padding=1) for width in widths)
        self.bottleneck = nn.Sequential(
            *(BottleneckBlock(widths[2], **partitioning.bottleneck, options=options) for _ in range(2))
        )
        _add_gating_and_decoder(self, widths, partitioning, options, decoder_cross_gating="unused")
        self.output = nn.Conv2d(features, 3, 3, padding=1, bias=bias)
        self.to(memory_format=torch.channels_last)  # conv weights in the layout the maps use

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        self._check_image(image)
        padded, (height, width) = pad_to_multiple(image, self.size_multiple)
        return self._restore(padded, None, None)[..., :height, :width]


def _reflect_indices(size: int, before: int, after: int, device: torch.device) -> torch.Tensor:
    """Indices of a reflect padding (edge not repeated) of a ``size``-long axis, for any pad length
    (reflecting again off the far edge where a pad is longer than the axis, as ``numpy.pad`` does)."""
    positions = torch.arange(-before, size + after, device=device)
    if size == 1:
        return torch.zeros_like(positions)
    # the period as a tensor: ONNX translates a remainder by a tensor, not by a symbolic size
    period = torch.full_like(positions[:1], 2 * (size - 1))
    folded = positions.remainder(period)
    return torch.where(folded < size, folded, period - folded)


def pad_as_google_eval(image: torch.Tensor, multiple: int = 64) -> tuple[torch.Tensor, tuple[slice, slice]]:
    """Pad a B×C×H×W image the way Google's MAXIM evaluation does; return it and the crop that undoes it.

    First an odd side gets one reflected row/column at the bottom/right; then both sides are reflect-padded
    symmetrically (half the padding on each side) to a multiple of ``multiple``. The crop takes the
    original H×W back out of the centre, as that evaluation does.
    """
    height, width = image.shape[-2:]
    even_h, even_w = height + height % 2, width + width % 2
    # sizes as multiples of ``multiple`` and halves as ``pad - pad // 2`` (the pads are even): the same numbers,
    # written so that torch.export proves the padded sides multiples without a guard
    pad_h, pad_w = round_up(even_h, multiple) - even_h, round_up(even_w, multiple) - even_w
    # the second padding reflects the evened image, whose new edge row is itself a reflection
    rows = _reflect_indices(height, 0, even_h - height, image.device)[
        _reflect_indices(even_h, pad_h // 2, pad_h - pad_h // 2, image.device)
    ]
    cols = _reflect_indices(width, 0, even_w - width, image.device)[
        _reflect_indices(even_w, pad_w // 2, pad_w - pad_w // 2, image.device)
    ]
    if exporting() or len(rows) != height or len(cols) != width:
        image = image.index_select(-2, rows).index_select(-1, cols)
    top = (even_h + pad_h) // 2 - even_h // 2
    left = (even_w + pad_w) // 2 - even_w // 2
    return image, (slice(top, top + height), slice(left, left + width))


class SupervisedAttention(nn.Module):
    """Supervised attention module (SAM, from MPRNet) between MAXIM stages.

    From a decoder map it predicts the stage's restored image (a residual on the stage input) and returns the
    map reweighted by an attention drawn from that image: ``(x + conv(x) ⊙ σ(conv(image)), image)``.
    """

    def __init__(self, channels: int, *, bias: bool = True) -> None:
        super().__init__()
        self.features = nn.Conv2d(channels, channels, 3, padding=1, bias=bias)
        self.to_image = nn.Conv2d(channels, 3, 3, padding=1, bias=bias)
        self.attention = nn.Conv2d(3, channels, 3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor, stage_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.to_image(x) + stage_input
        attended = torch.addcmul(x, self.features(x), torch.sigmoid(self.attention(image)))
        return attended, image


@dataclass
class StageMaps:
    """What a MAXIM stage hands to the next, per level (0 = full resolution): SAM maps, encoder outputs
    (after their cross gating) and decoder outputs."""

    attended: list[torch.Tensor]
    encoded: list[torch.Tensor]
    decoded: list[torch.Tensor]


class MaximStage(nn.Module):
    """One stage of Google's multi-stage MAXIM: a three-level MAXIM U-Net on the image pyramid.

    Like the single-stage :class:`Maxim` (widths f, 2f, 4f, strided-conv down, transposed-conv up, two
    bottleneck blocks, coarse-to-fine cross gating of the encoder outputs), plus what chains the stages: a
    later stage fuses its input features with the previous stage's SAM maps (cross-gating blocks,
    ``input_fusions``) and cross-gates each encoder level with the previous stage's encoder + decoder maps. A
    stage before the last ends in a SAM at every level; the last ends in 3×3 output convs at its
    ``output_levels`` finest levels.
    """

    def __init__(
        self,
        *,
        features: int,
        partitioning: Partitioning,
        options: MixingOptions,
        bottleneck_blocks: int,
        first: bool,
        last: bool,
        output_levels: int,
    ) -> None:
        super().__init__()
        bias = options.bias
        widths = (features, 2 * features, 4 * features)
        gating = {"bias": bias, "dropout": options.dropout, "gelu": options.gelu}

        self.input_convs = nn.ModuleList(nn.Conv2d(3, width, 3, padding=1, bias=bias) for width in widths)
        self.input_fusions = None
        if not first:
            self.input_fusions = nn.ModuleList(
                CrossGatingBlock(width, width, y_channels=None, **partitioning.level(level), **gating)
                for level, width in enumerate(widths)
            )
        self.encoders = nn.ModuleList(
            LevelBlock(
                in_factor * features,
                width,
                **partitioning.level(level),
                options=options,
                cross_gating="absent" if first else "run",
            )
            for level, (in_factor, width) in enumerate(zip((2, 3, 6), widths, strict=True))
        )
        self.downsamples = nn.ModuleList(nn.Conv2d(width, width, 4, stride=2, padding=1, bias=bias) for width in widths)
        self.bottleneck = nn.Sequential(
            *(
                BottleneckBlock(widths[2], **partitioning.bottleneck, options=options)
                for _ in range(bottleneck_blocks)
            )
        )
        _add_gating_and_decoder(self, widths, partitioning, options, decoder_cross_gating="absent")
        self.last = last
        if last:
            self.outputs = nn.ModuleList(
                nn.Conv2d(widths[level], 3, 3, padding=1, bias=bias) for level in range(output_levels)
            )
        else:
            self.attention = nn.ModuleList(SupervisedAttention(width, bias=bias) for width in widths)

    def forward(
        self, pyramid: Sequence[torch.Tensor], previous: StageMaps | None
    ) -> tuple[list[torch.Tensor], StageMaps | None]:
        """``pyramid[l]``: the input image at level l. Returns the stage's images (finest first) and, for a
        stage before the last, the maps the next stage takes."""
        scales = [conv(image) for conv, image in zip(self.input_convs, pyramid, strict=True)]
        if self.input_fusions is not None:
            if previous is None:
                raise ValueError("a MAXIM stage after the first needs the previous stage's maps")
            fusions = zip(self.input_fusions, scales, previous.attended, strict=True)
            scales = [fuse([x], sam)[0] for fuse, x, sam in fusions]

        encoded = []
        parts = [scales[0], scales[0]]
        for level, encoder in enumerate(self.encoders):
            gate = None if previous is None else previous.encoded[level] + previous.decoded[level]
            encoded.append(encoder(*parts, gate=gate))
            parts = [self.downsamples[level](encoded[-1])]
            if level + 1 < LEVELS:
                parts.append(scales[level + 1])
        for block in self.bottleneck:
            parts = [block(*parts)]
        x = parts[0]

        gated: dict[int, torch.Tensor] = {}
        signal = x
        for level in reversed(range(LEVELS)):
            inputs = [resample(encoded[source]) for source, resample in enumerate(self.gating_inputs[level])]
            gated[level], signal = self.cross_gating[level](inputs, signal)

        decoded: dict[int, torch.Tensor] = {}
        for level in reversed(range(LEVELS)):
            resamplers = self.decoder_inputs[level]
            skips = [resamplers[source](gated[source]) for source in reversed(range(LEVELS))]
            x = decoded[level] = self.decoders[level](self.upsamples[level](x), *skips)

        if self.last:
            images = [conv(decoded[level]) + pyramid[level] for level, conv in enumerate(self.outputs)]
            return images, None
        attended, images = [], []
        for level, sam in enumerate(self.attention):
            features, image = sam(decoded[level], pyramid[level])
            attended.append(features)
            images.append(image)
        return images, StageMaps(attended, encoded, [decoded[level] for level in range(LEVELS)])


class MaximMultiStage(nn.Module):
    """Google's multi-stage MAXIM (MAXIM-2S, MAXIM-3S): ``model(image) -> restored image``.

    ``stages`` U-Nets (:class:`MaximStage`) run one after the other on the image and its nearest-neighbour
    pyramid; each later stage starts from the previous one's SAM maps and is cross-gated by its encoder and
    decoder maps. The restored image is the last stage's full-resolution output. GELU is Flax's tanh
    approximation, as the published weights were trained with.

    ``output_levels`` is how many pyramid levels the last stage predicts (Google trains with all three; the
    published inference graphs keep only the full-resolution one); :meth:`forward_all` returns every
    stage's images. Inputs of any size are padded as Google's evaluation pads (:func:`pad_as_google_eval`:
    reflected, centred, to a multiple of ``size_multiple``) and cropped back.
    """

    def __init__(
        self,
        *,
        stages: int = 3,
        features: int = 32,
        bottleneck_blocks: int = 2,
        bias: bool = True,
        leaky_slope: float = 0.2,
        high_res_levels: int = 2,
        block_size_high_res: Sequence[int] = (16, 16),
        block_size_low_res: Sequence[int] = (8, 8),
        grid_size_high_res: Sequence[int] = (16, 16),
        grid_size_low_res: Sequence[int] = (8, 8),
        block_mlp_factor: int = 2,
        grid_mlp_factor: int = 2,
        input_projection_factor: int = 2,
        channel_reduction: int = 4,
        output_levels: int = 1,
        gelu: Gelu = "tanh",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if stages < 1:
            raise ValueError(f"stages must be at least 1, got {stages}")
        if not 1 <= output_levels <= LEVELS:
            raise ValueError(f"output_levels must be between 1 and {LEVELS}, got {output_levels}")
        if bottleneck_blocks < 1:
            raise ValueError(f"bottleneck_blocks must be at least 1, got {bottleneck_blocks}")
        partitioning, options = _configure(
            out_channels=3,
            bias=bias,
            leaky_slope=leaky_slope,
            multi_axis_mlp=True,
            high_res_levels=high_res_levels,
            block_size_high_res=block_size_high_res,
            block_size_low_res=block_size_low_res,
            grid_size_high_res=grid_size_high_res,
            grid_size_low_res=grid_size_low_res,
            block_mlp_factor=block_mlp_factor,
            grid_mlp_factor=grid_mlp_factor,
            input_projection_factor=input_projection_factor,
            channel_reduction=channel_reduction,
            dropout=dropout,
        )
        options = dataclasses.replace(options, gelu=gelu)
        self.size_multiple = partitioning.size_multiple
        self.stages = nn.ModuleList(
            MaximStage(
                features=features,
                partitioning=partitioning,
                options=options,
                bottleneck_blocks=bottleneck_blocks,
                first=index == 0,
                last=index == stages - 1,
                output_levels=output_levels,
            )
            for index in range(stages)
        )
        self.to(memory_format=torch.channels_last)

    def forward_all(self, image: torch.Tensor) -> list[list[torch.Tensor]]:
        """Every stage's restored images, finest level first, of an image whose sides are multiples of
        ``size_multiple`` (no padding here)."""
        _MaximUNet._check_image(image)
        if image.shape[-2] % self.size_multiple or image.shape[-1] % self.size_multiple:
            raise ValueError(
                f"forward_all needs sides that are multiples of {self.size_multiple}, got {tuple(image.shape[-2:])}"
            )
        image = image.contiguous(memory_format=torch.channels_last)
        pyramid = [nearest_downsample(image, level) for level in range(LEVELS)]
        outputs, previous = [], None
        for stage in self.stages:
            images, previous = stage(pyramid, previous)
            outputs.append(images)
        return outputs

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        _MaximUNet._check_image(image)
        padded, (rows, cols) = pad_as_google_eval(image, self.size_multiple)
        return self.forward_all(padded)[-1][0][..., rows, cols].contiguous()
