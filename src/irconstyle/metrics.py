"""PSNR and SSIM computed the way the field's reported numbers are (BasicSR / MATLAB conventions).

- Arithmetic in float64 on the 0–255 scale (peak 255): inputs are rescaled by ``255 / data_range`` first.
- ``y_channel=True`` scores ITU-R BT.601 luma in studio range, Y = 16 + 65.481·R + 128.553·G + 24.966·B
  with R, G, B in [0, 1] (MATLAB ``rgb2ycbcr``), left unrounded as BasicSR does.
- SSIM: 11×11 Gaussian window, σ = 1.5, C1 = (0.01·255)², C2 = (0.03·255)², statistics over the "valid"
  region only (no padding), per channel, then averaged over channels. No downsampling.
- ``crop_border`` pixels are removed from every edge first.

Inputs are H×W×3 RGB numpy arrays (one score) or tensors shaped 3×H×W or B×3×H×W (one score per image).
The value range is never guessed: ``uint8`` spans 0–255 and ``uint16`` 0–65535 by their dtype, and any other
dtype (floats above all, e.g. what :func:`irconstyle.restore` returns for float input) must state it with
``data_range=`` (``1.0`` for [0, 1], ``255.0`` for 0–255); a float pair without it is refused. Quantise
outputs with :func:`irconstyle.data.io.tensor_to_image` first to get the exact numbers of a benchmark table.

:data:`PROTOCOLS` holds the benchmark recipes; print ``protocol.describe()`` next to every number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0  # applied to RGB on the 0–255 scale
_WINDOW_SIZE, _WINDOW_SIGMA = 11, 1.5
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

Image = np.ndarray | torch.Tensor


def _gaussian_window() -> np.ndarray:
    offsets = np.arange(_WINDOW_SIZE) - _WINDOW_SIZE // 2
    weights = np.exp(-(offsets**2) / (2 * _WINDOW_SIGMA**2))
    return weights / weights.sum()


_DTYPE_RANGES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def _value_range(dtype: np.dtype, data_range: float | None) -> float:
    """The span of the pair's values: fixed by an 8- or 16-bit dtype, otherwise ``data_range`` (required)."""
    implied = _DTYPE_RANGES.get(dtype)
    if implied is not None:
        if data_range is not None and data_range != implied:
            raise ValueError(f"{dtype} images span 0–{implied:g}; data_range={data_range:g} contradicts that")
        return implied
    if data_range is None:
        raise ValueError(
            f"{dtype} images have no implied range: pass data_range=1.0 for values in [0, 1] "
            "or data_range=255.0 for 0–255"
        )
    if not data_range > 0:
        raise ValueError(f"data_range must be > 0, got {data_range}")
    return float(data_range)


def _prepare(
    img: Image, ref: Image, crop_border: int, y_channel: bool, data_range: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Check the pair and bring it to float64 B×C×H×W on the 0–255 scale: cropped, and reduced to Y when
    asked. Tensors (any device) are copied to CPU, where reported numbers should be computed anyway."""
    if isinstance(img, torch.Tensor) != isinstance(ref, torch.Tensor):
        raise TypeError(
            f"img and ref must both be numpy arrays or both tensors, got {type(img).__name__} and {type(ref).__name__}"
        )
    if tuple(img.shape) != tuple(ref.shape):
        raise ValueError(f"img and ref shapes differ: {tuple(img.shape)} vs {tuple(ref.shape)}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if isinstance(img, torch.Tensor):
        if img.ndim == 3:
            img, ref = img[None], ref[None]
        if img.ndim != 4 or img.shape[1] != 3:
            raise ValueError(f"tensors must be 3×H×W or B×3×H×W, got shape {tuple(img.shape)}")
        img, ref = (x.detach().cpu().numpy() for x in (img, ref))
    else:
        img, ref = np.asarray(img), np.asarray(ref)
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"arrays must be H×W×3 RGB, got shape {img.shape}")
        img, ref = (x.transpose(2, 0, 1)[None] for x in (img, ref))
    if img.dtype != ref.dtype:
        raise ValueError(f"img and ref dtypes differ: {img.dtype} vs {ref.dtype}; bring them to one scale first")
    scale = 255.0 / _value_range(img.dtype, data_range)
    img, ref = (x.astype(np.float64) * scale for x in (img, ref))
    if crop_border:
        img, ref = (x[..., crop_border:-crop_border, crop_border:-crop_border] for x in (img, ref))
    if y_channel:
        img, ref = (np.einsum("bchw,c->bhw", x, _Y_WEIGHTS)[:, None] + 16.0 for x in (img, ref))
    if img.shape[-1] == 0 or img.shape[-2] == 0:
        raise ValueError("nothing left to score after crop_border")
    return np.ascontiguousarray(img), np.ascontiguousarray(ref)


def _result(values: np.ndarray, like: Image) -> float | torch.Tensor:
    """Per-image values as a float (numpy input) or a float64 tensor of shape B (tensor input)."""
    if isinstance(like, torch.Tensor):
        return torch.from_numpy(values)
    return float(values[0])


def psnr(
    img: Image, ref: Image, crop_border: int = 0, y_channel: bool = False, *, data_range: float | None = None
) -> float | torch.Tensor:
    """Peak signal-to-noise ratio in dB (peak = the data range, float64); ``inf`` for identical images.

    numpy H×W×3 -> float; tensors -> float64 tensor of per-image values (shape B). ``data_range``: the span
    of the values, required unless the dtype is uint8 or uint16.
    """
    x, y = _prepare(img, ref, crop_border, y_channel, data_range)
    mse = np.mean((x - y) ** 2, axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return _result(10.0 * np.log10(255.0**2 / mse), img)


def _window_mean(x: np.ndarray) -> np.ndarray:
    """Gaussian-weighted local means over the valid region of the last two axes (separable: a weighted
    sum of the 11 shifted views along each axis)."""
    weights = _gaussian_window()
    height, width = x.shape[-2] - _WINDOW_SIZE + 1, x.shape[-1] - _WINDOW_SIZE + 1
    rows = sum(w * x[..., k : k + height, :] for k, w in enumerate(weights))
    return sum(w * rows[..., :, k : k + width] for k, w in enumerate(weights))


def _ssim_map(img: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """SSIM map over the valid region of B×C×H×W float64 images."""
    if min(img.shape[-2:]) < _WINDOW_SIZE:
        raise ValueError(f"SSIM needs images of at least {_WINDOW_SIZE}×{_WINDOW_SIZE}, got {img.shape[-2:]}")
    mu1, mu2 = _window_mean(img), _window_mean(ref)
    var1 = _window_mean(img * img) - mu1**2
    var2 = _window_mean(ref * ref) - mu2**2
    cov = _window_mean(img * ref) - mu1 * mu2
    return ((2 * mu1 * mu2 + _C1) * (2 * cov + _C2)) / ((mu1**2 + mu2**2 + _C1) * (var1 + var2 + _C2))


def ssim(
    img: Image, ref: Image, crop_border: int = 0, y_channel: bool = False, *, data_range: float | None = None
) -> float | torch.Tensor:
    """Structural similarity (Wang et al. 2004; 11×11 Gaussian σ 1.5, valid region, mean over channels).

    numpy H×W×3 -> float; tensors -> float64 tensor of per-image values (shape B). ``data_range`` as in
    :func:`psnr`.
    """
    x, y = _prepare(img, ref, crop_border, y_channel, data_range)
    return _result(_ssim_map(x, y).mean(axis=(1, 2, 3)), img)


RESTORATION_METRICS = ("psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y")


def restoration_scores(
    restored: Image, reference: Image, *, data_range: float, crop_border: int = 0
) -> dict[str, float | torch.Tensor]:
    """PSNR and SSIM on RGB and on Y, the four numbers ``irconstyle eval`` and training validation report
    (:data:`RESTORATION_METRICS`); ``data_range`` is always stated (255 for uint8 arrays, 1.0 for [0, 1])."""
    scores: dict[str, float | torch.Tensor] = {}
    for y_channel, space in ((False, "rgb"), (True, "y")):
        scores[f"psnr_{space}"] = psnr(restored, reference, crop_border, y_channel, data_range=data_range)
        scores[f"ssim_{space}"] = ssim(restored, reference, crop_border, y_channel, data_range=data_range)
    return {name: scores[name] for name in RESTORATION_METRICS}


@dataclass(frozen=True)
class Protocol:
    """How a benchmark is scored, so that numbers are comparable with published tables.

    ``noise_sigma`` (0–255 scale) marks a synthetic-noise benchmark: :meth:`noisy_input` builds the
    network input from the clean image exactly as the reference test scripts do.
    """

    name: str
    y_channel: bool
    crop_border: int = 0
    report_ssim: bool = True
    noise_sigma: float | None = None
    noise_seed: int = 0
    note: str = ""

    def describe(self) -> str:
        """One line stating the protocol; print it next to every number it produced."""
        space = "Y (BT.601 studio range)" if self.y_channel else "RGB"
        metrics = "PSNR/SSIM" if self.report_ssim else "PSNR"
        parts = [f"{self.name}: {metrics} on {space}, uint8 images, crop_border {self.crop_border}"]
        if self.report_ssim:
            parts.append("SSIM 11×11 Gaussian σ 1.5, valid region, channel mean")
        if self.noise_sigma is not None:
            parts.append(
                f"input = clean + N(0, {self.noise_sigma:g}/255) float64, seed {self.noise_seed} per image, "
                "not clipped or quantised"
            )
        if self.note:
            parts.append(self.note)
        return "; ".join(parts)

    def noisy_input(self, clean: np.ndarray) -> np.ndarray:
        """The benchmark's noisy input for a clean H×W×3 float image in [0, 1] (float64, unclipped).

        Uses the legacy ``RandomState(seed)`` stream, i.e. the same noise as ``np.random.seed(0)`` followed
        by ``np.random.normal`` in the Restormer / KAIR test scripts.
        """
        if self.noise_sigma is None:
            raise ValueError(f"protocol {self.name!r} has no synthetic noise")
        clean = np.asarray(clean, dtype=np.float64)
        noise = np.random.RandomState(self.noise_seed).normal(0.0, self.noise_sigma / 255.0, clean.shape)
        return clean + noise

    def score(
        self, restored: Image, reference: Image, *, data_range: float | None = None
    ) -> dict[str, float | torch.Tensor]:
        """The protocol's metrics for one pair (or batch): {"psnr": …, "ssim": …}; ``data_range`` as in
        :func:`psnr`."""
        scores = {"psnr": psnr(restored, reference, self.crop_border, self.y_channel, data_range=data_range)}
        if self.report_ssim:
            scores["ssim"] = ssim(restored, reference, self.crop_border, self.y_channel, data_range=data_range)
        return scores


def _noise_protocols() -> dict[str, Protocol]:
    protocols = {}
    for dataset in ("cbsd68", "urban100", "kodak24", "mcmaster"):
        for sigma in (15, 25, 50):
            protocols[f"{dataset}-sigma{sigma}"] = Protocol(
                name=f"{dataset}-sigma{sigma}", y_channel=False, noise_sigma=float(sigma),
                note="published tables for this set report PSNR only",
            )
    return protocols


PROTOCOLS: dict[str, Protocol] = {
    **_noise_protocols(),
    **{
        name: Protocol(name=name, y_channel=True)
        for name in ("rain100h", "rain100l", "test100", "test1200", "test2800")
    },
    "sots-outdoor": Protocol(name="sots-outdoor", y_channel=False),
    "sots-indoor": Protocol(name="sots-indoor", y_channel=False),
    "gopro": Protocol(
        name="gopro", y_channel=False,
        note="published GoPro/HIDE SSIMs use MATLAB's 3-D SSIM and differ slightly from this per-channel SSIM",
    ),
    "hide": Protocol(name="hide", y_channel=False),
    "realblur-j": Protocol(name="realblur-j", y_channel=False),
    "realblur-r": Protocol(name="realblur-r", y_channel=False),
}
"""Benchmark name -> scoring recipe (deraining on Y; dehazing, deblurring and denoising on RGB)."""


def get_protocol(name: str) -> Protocol:
    """The :class:`Protocol` called ``name`` (see :data:`PROTOCOLS`)."""
    try:
        return PROTOCOLS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(sorted(PROTOCOLS))}") from None
