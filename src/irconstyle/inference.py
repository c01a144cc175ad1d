"""Running a restoration model on whole images: padding, tiling with blended overlaps, self-ensemble, precision.

Everything here works on float tensors in [0, 1]; image files and arrays are converted by :mod:`irconstyle.data.io`.
"""

from __future__ import annotations

import contextlib
import functools
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Literal

import torch
from torch import nn

from irconstyle.zoo.descriptor import PRECISIONS, ModelDescriptor, describe

Progress = Callable[[int, int], None]  # (tiles done, tiles total); called with 0 done before the first
Tile = int | Literal["auto"] | None  # a tile size in pixels, "auto" (see resolve_tile), or 0 / None: whole images

Model = ModelDescriptor | nn.Module  # a bare module is described by its architecture (see zoo.describe)

# tile="auto": whole images up to AUTO_TILE_ABOVE_PIXELS, tiles of AUTO_TILE beyond. A whole-image restore needs
# memory in proportion to the image, tiles a bounded amount; AUTO_TILE is the size that restored the most
# megapixels per second of those benchmarks/tiling.py compares.
AUTO_TILE = 384
AUTO_TILE_ABOVE_PIXELS = 1024 * 1024
# tile_overlap=None: this many pixels, or half the tile where tiles are smaller than twice that.
DEFAULT_TILE_OVERLAP = 32


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a :class:`torch.device` this torch build and machine can run on, else a one-line ValueError
    (torch's own errors for an unknown name or a build without CUDA are assertions and tracebacks)."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {str(device)!r}; use cpu, cuda or cuda:N") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device}: this torch build ({torch.__version__}) has no CUDA, or no GPU is "
                             "visible; use cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"device {device}: there are {torch.cuda.device_count()} CUDA device(s), numbered from 0")
    elif parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {device}: MPS is not available here; use cpu")
    elif parsed.type != "cpu":
        raise ValueError(f"device {device}: irconstyle runs on cpu, cuda or mps")
    return parsed


def check_precision(device: torch.device, precision: str, model: Model | None = None) -> None:
    """Raise a clear ValueError for a precision this device (or the model, where given) cannot run."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if model is not None and precision not in (supported := describe(model).precisions):
        raise ValueError(f"precision {precision} is not supported by this model; use {', '.join(supported)}")
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("fp16 is for GPUs; use bf16 on the CPU")


@functools.cache
def _warn_slow_cpu_bf16() -> None:
    warnings.warn(
        "bf16 on this CPU is slower than fp32 (a bf16 matrix product measured slower than an fp32 one; see "
        "benchmarks/README.md); use fp32 here",
        stacklevel=3,
    )


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles (Intel Sapphire Rapids and later)."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe and probe())


@functools.cache
def cpu_bf16_is_fast() -> bool:
    """Whether bf16 matrix products beat fp32 on this CPU: always with AMX; otherwise measured once.

    CPU flags do not tell: the same AVX-512 BF16 instructions are slower than fp32 on Intel Xeons without AMX and
    faster on AMD Zen 4 and later, so only timing them says which this CPU is.
    """
    return cpu_has_amx() or _bf16_matmul_speedup() > 1.0


def _bf16_matmul_speedup(size: int = 512, repeat: int = 3) -> float:
    """fp32 time over bf16 time of a ``size``³ matrix product on this thread pool, best of ``repeat`` each. The
    time is the process's CPU time, so that other processes on the cores do not sway the answer."""
    best = {torch.float32: float("inf"), torch.bfloat16: float("inf")}
    generator = torch.Generator().manual_seed(0)  # leaves the global random stream alone
    left, right = torch.randn(2, size, size, generator=generator)
    operands = {dtype: (left.to(dtype), right.to(dtype)) for dtype in best}
    with torch.inference_mode():
        for _ in range(repeat):
            for dtype, (a, b) in operands.items():
                start = time.process_time()
                torch.mm(a, b)
                best[dtype] = min(best[dtype], time.process_time() - start)
    tick = 1e-9  # a product too short for the clock to see counts as one tick, never zero
    return max(best[torch.float32], tick) / max(best[torch.bfloat16], tick)


def precision_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast for ``precision`` ("fp32": none; "bf16": CPU or GPU; "fp16": GPU only).

    bf16 on a CPU where it is slower than fp32 (see :func:`cpu_bf16_is_fast`) warns once, and runs.
    """
    check_precision(device, precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16" and device.type == "cpu" and not cpu_bf16_is_fast():
        _warn_slow_cpu_bf16()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _dihedral(x: torch.Tensor, index: int) -> torch.Tensor:
    if index >= 4:
        x = x.transpose(-2, -1)
    return torch.rot90(x, index % 4, dims=(-2, -1))


def _dihedral_inverse(x: torch.Tensor, index: int) -> torch.Tensor:
    x = torch.rot90(x, -(index % 4), dims=(-2, -1))
    return x.transpose(-2, -1) if index >= 4 else x


def _run(model: ModelDescriptor, x: torch.Tensor, self_ensemble: bool) -> torch.Tensor:
    if not self_ensemble:
        return model(x).float()
    total = torch.zeros_like(x, dtype=torch.float32)
    for index in range(8):
        total += _dihedral_inverse(model(_dihedral(x, index)).float(), index)
    return total / 8


def _tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return [*starts, length - tile]


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool, device: torch.device) -> torch.Tensor:
    """Blending weights along one axis of a tile: a raised-cosine ramp over the overlap on interior sides."""
    weight = torch.ones(length, device=device)
    if overlap > 0:
        ramp = 0.5 - 0.5 * torch.cos(torch.pi * (torch.arange(overlap, device=device) + 0.5) / overlap)
        if not at_start:
            weight[:overlap] = ramp
        if not at_end:
            weight[-overlap:] = ramp.flip(0)
    return weight


def tiles(height: int, width: int, tile: int, overlap: int) -> Iterator[tuple[int, int, int, int]]:
    """(top, left, tile height, tile width) of the tiles covering an image, overlapping by ``overlap``."""
    for top in _tile_starts(height, tile, overlap):
        for left in _tile_starts(width, tile, overlap):
            yield top, left, min(tile, height), min(tile, width)


def resolve_tile(model: Model, tile: Tile, height: int, width: int) -> int | None:
    """The tile size to use for an image: ``tile`` itself, or for ``"auto"`` the descriptor's ``native_tile``
    where it has one, else none up to :data:`AUTO_TILE_ABOVE_PIXELS` and :data:`AUTO_TILE` (rounded up to the
    model's size multiple) beyond.

    ``native_tile`` (recorded in the weights file, read by :func:`irconstyle.load`) marks weights that restore
    better in pieces the size of their training patches: global poolings (NAFNet's channel attention,
    ConStyle's latent) see statistics of a whole photo that training never showed them.
    """
    if tile != "auto":
        return tile or None
    descriptor = describe(model)
    if descriptor.native_tile or height * width > AUTO_TILE_ABOVE_PIXELS:
        return _auto_tile_size(descriptor)
    return None


def _auto_tile_size(descriptor: ModelDescriptor) -> int:
    multiple = descriptor.size_multiple
    return descriptor.native_tile or -(-AUTO_TILE // multiple) * multiple


def check_tiling(model: Model, tile: Tile, tile_overlap: int | None) -> None:
    """Raise a clear ValueError for tile options this model cannot use."""
    if tile is None or (type(tile) is int and tile == 0):
        return
    descriptor = describe(model)
    if tile == "auto":
        tile = _auto_tile_size(descriptor)
    if not isinstance(tile, int) or isinstance(tile, bool):
        raise ValueError(f"tile must be a number of pixels, 'auto' or None, got {tile!r}")
    multiple = descriptor.size_multiple
    if tile < multiple or tile % multiple:
        raise ValueError(f"tile must be a positive multiple of {multiple} for this model, got {tile}")
    if tile_overlap is not None and not 0 <= tile_overlap <= tile // 2:
        raise ValueError(f"tile_overlap must be in [0, {tile // 2}] for tile {tile}, got {tile_overlap}")


@torch.no_grad()  # not inference_mode: autocast reuses its weight casts across tiles only outside it
def restore_tensor(
    model: Model,
    image: torch.Tensor,
    *,
    tile: Tile = None,
    tile_overlap: int | None = None,
    self_ensemble: bool = False,
    precision: str = "fp32",
    progress: Progress | None = None,
) -> torch.Tensor:
    """Restore a B×3×H×W tensor in [0, 1] with ``model`` (put in eval mode), tiled, padded and run as its
    descriptor says; returns float32 on ``image``'s device.

    With ``tile`` the image is processed in tiles of at most ``tile``×``tile`` pixels that overlap by
    ``tile_overlap`` and are blended with raised-cosine weights, so peak memory depends on the tile size and not
    on the image size. The output accumulator is kept in float32. ``tile="auto"`` tiles large images only
    (:func:`resolve_tile`). ``tile_overlap=None`` is :data:`DEFAULT_TILE_OVERLAP` pixels, at most half the
    tile; an explicit overlap must lie in [0, tile / 2].
    """
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"expected a B×3×H×W image tensor, got shape {tuple(image.shape)}")
    model = describe(model).eval()
    check_tiling(model, tile, tile_overlap)
    device = image.device
    height, width = image.shape[-2:]
    tile = resolve_tile(model, tile, height, width)
    if tile is not None and tile_overlap is None:
        tile_overlap = min(DEFAULT_TILE_OVERLAP, tile // 2)
    check_precision(device, precision, model)
    with precision_context(device, precision):
        if tile is None or (height <= tile and width <= tile):
            if progress:
                progress(0, 1)
            output = _run(model, image, self_ensemble)
            if progress:
                progress(1, 1)
            return output.clamp_(0, 1)
        output = torch.zeros(image.shape, dtype=torch.float32, device=device)
        weights = torch.zeros((1, 1, height, width), dtype=torch.float32, device=device)
        positions = list(tiles(height, width, tile, tile_overlap))
        if progress:
            progress(0, len(positions))
        for done, (top, left, tile_h, tile_w) in enumerate(positions, start=1):
            patch = image[..., top : top + tile_h, left : left + tile_w]
            restored = _run(model, patch, self_ensemble)
            weight = torch.outer(
                _ramp(tile_h, tile_overlap, top == 0, top + tile_h == height, device),
                _ramp(tile_w, tile_overlap, left == 0, left + tile_w == width, device),
            )
            output[..., top : top + tile_h, left : left + tile_w] += restored * weight
            weights[..., top : top + tile_h, left : left + tile_w] += weight
            if progress:
                progress(done, len(positions))
        return output.div_(weights).clamp_(0, 1)
