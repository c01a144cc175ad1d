"""Synthetic degradations for the five tasks: noise, rain, haze, blur, low light and JPEG, pure and seeded.

Every function takes a float image in [0, 1] (H×W×3 numpy, any float dtype), returns a new float32 image
and draws its randomness from the ``rng`` argument only (a :class:`numpy.random.Generator` or an int
seed), so the same seed always gives the same result. Nothing here touches global random state.

:func:`degrade` is the single entry point by task (``denoise``, ``derain``, ``dehaze``, ``deblur``,
``enhance``): a
named level (``low``, ``medium``, ``high``, see :data:`LEVELS`), a list of names (one drawn per call) or
a mapping of explicit parameters, each a fixed value, a ``(low, high)`` tuple or ``{"min", "max"}``
mapping (drawn uniformly), or a list / ``{"choice": [...]}`` (one drawn).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

TASKS = ("denoise", "derain", "dehaze", "deblur", "enhance")
DETECTION_CLASSES = ("none", *TASKS)
"""What a degradation classifier tells apart: a clean photo, or the task that would restore it."""

LEVELS: dict[str, dict[str, dict[str, Any]]] = {
    # σ on the 0–255 scale; the three benchmark noise levels.
    "denoise": {
        "low": {"sigma": 15.0},
        "medium": {"sigma": 25.0},
        "high": {"sigma": 50.0},
    },
    # Lengths and widths in pixels of the nearest streak layer; density = streak seeds per pixel.
    # "low" resembles Rain100L (one sparse layer), "high" Rain100H (several dense, long, bright layers).
    "derain": {
        "low": {
            "layers": 1, "angle": (-15.0, 15.0), "angle_spread": 3.0, "length": (14.0, 24.0),
            "width": (1.0, 1.5), "density": (0.0015, 0.0025), "opacity": (0.35, 0.5),
        },
        "medium": {
            "layers": 2, "angle": (-20.0, 20.0), "angle_spread": 4.0, "length": (20.0, 32.0),
            "width": (1.3, 2.0), "density": (0.002, 0.0035), "opacity": (0.4, 0.6),
        },
        "high": {
            "layers": (3, 4), "angle": (-25.0, 25.0), "angle_spread": 6.0, "length": (30.0, 45.0),
            "width": (1.8, 2.8), "density": (0.0025, 0.004), "opacity": (0.5, 0.7),
        },
    },
    # RESIDE OTS: β ∈ [0.04, 0.2] and grey airlight A ∈ [0.8, 1.0]; depth in the same units
    # (the synthetic prior spans 0 .. max_depth).
    "dehaze": {
        "low": {"beta": (0.04, 0.08), "airlight": (0.8, 1.0), "max_depth": 20.0},
        "medium": {"beta": (0.08, 0.14), "airlight": (0.8, 1.0), "max_depth": 20.0},
        "high": {"beta": (0.14, 0.2), "airlight": (0.8, 1.0), "max_depth": 20.0},
    },
    # Camera-shake extent in pixels (GoPro blurs reach tens of pixels at 1280×720), then mild sensor noise
    # (σ on 0–255). kind "defocus" uses defocus_sigma (Gaussian, pixels) instead of a shake kernel.
    "deblur": {
        "low": {"kind": "motion", "length": (5.0, 11.0), "defocus_sigma": (1.0, 2.0), "noise_sigma": (0.0, 1.0)},
        "medium": {
            "kind": "motion", "length": (11.0, 21.0), "defocus_sigma": (2.0, 3.5), "noise_sigma": (0.5, 1.5),
        },
        "high": {"kind": "motion", "length": (21.0, 35.0), "defocus_sigma": (3.5, 5.0), "noise_sigma": (1.0, 2.0)},
    },
    # Low light as in LOL: ``exposure`` scales the linear scene radiance, ``peak`` is the photons a white pixel
    # would collect at that exposure (shot noise), ``read_sigma`` the read noise (0–255 scale, linear); the
    # result is re-encoded with the sRGB-like gamma ``gamma``.
    "enhance": {
        "low": {"exposure": (0.15, 0.3), "peak": (300.0, 1000.0), "read_sigma": (0.5, 1.5), "gamma": 2.2},
        "medium": {"exposure": (0.06, 0.15), "peak": (60.0, 300.0), "read_sigma": (1.0, 2.0), "gamma": 2.2},
        "high": {"exposure": (0.02, 0.06), "peak": (15.0, 60.0), "read_sigma": (1.0, 3.0), "gamma": 2.2},
    },
}
"""Named levels per task: parameter -> fixed value, ``(low, high)`` range or list of choices."""

# Any task: JPEG-compress the degraded image at this quality; or clip and quantise it to this many bits, as an
# image saved by a camera or an editor is (e.g. ``quantize_bits: 8`` for noisy photos stored as 8-bit PNGs).
_OPTIONAL_PARAMETERS = {"jpeg_quality": None, "quantize_bits": None}
_INTEGER_PARAMETERS = {"layers", "jpeg_quality", "quantize_bits"}


class Degraded(NamedTuple):
    """A degraded image and the concrete parameters drawn for it (JSON-serialisable)."""

    image: np.ndarray
    parameters: dict[str, Any]


# --- building blocks ------------------------------------------------------------------------------


def as_generator(rng: np.random.Generator | int) -> np.random.Generator:
    """A Generator as given, or a fresh one seeded with the int."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be a numpy Generator or an int seed, got {type(rng).__name__}")


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 image, got shape {image.shape}")
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"expected float pixels in [0, 1], got {image.dtype}; convert with data.io.image_to_float")
    return image.astype(np.float32, copy=False)


def _check_non_negative(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve each channel of an H×W×C image with an odd-sized 2-D kernel (FFT; reflected borders)."""
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
        raise ValueError(f"kernel must be 2-D with odd sides, got shape {kernel.shape}")
    pad_y, pad_x = kernel.shape[0] // 2, kernel.shape[1] // 2
    padded = np.pad(image, ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="reflect")
    shape = padded.shape[:2]
    spectrum = np.fft.rfft2(padded, axes=(0, 1)) * np.fft.rfft2(kernel, s=shape)[..., None]
    full = np.fft.irfft2(spectrum, s=shape, axes=(0, 1))
    height, width = image.shape[:2]
    return full[2 * pad_y : 2 * pad_y + height, 2 * pad_x : 2 * pad_x + width].astype(np.float32)


def _convolve_periodic(field: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Circular convolution of an H×W field with a centred odd kernel (for stationary layers like rain)."""
    height, width = field.shape
    placed = np.zeros((height, width))
    ky, kx = kernel.shape
    rows = (np.arange(ky) - ky // 2) % height
    cols = (np.arange(kx) - kx // 2) % width
    np.add.at(placed, (rows[:, None], cols[None, :]), kernel)
    return np.fft.irfft2(np.fft.rfft2(field) * np.fft.rfft2(placed), s=field.shape)


def gaussian_kernel(sigma: float, radius: int | None = None) -> np.ndarray:
    """A normalised 2-D Gaussian, (2·radius+1)² with radius ⌈3σ⌉ by default."""
    sigma = _check_non_negative("sigma", sigma)
    radius = max(1, math.ceil(3 * sigma)) if radius is None else radius
    if sigma == 0:
        kernel = np.zeros((2 * radius + 1,) * 2)
        kernel[radius, radius] = 1.0
        return kernel
    axis = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel = np.outer(axis, axis)
    return kernel / kernel.sum()


# --- noise ----------------------------------------------------------------------------------------


def gaussian_noise(
    image: np.ndarray, sigma: float, rng: np.random.Generator | int, *, clip: bool = False
) -> np.ndarray:
    """Additive white Gaussian noise, σ on the 0–255 scale. Not clipped by default (the denoising benchmarks
    feed the unclipped noisy image to the network)."""
    image = _check_image(image)
    sigma = _check_non_negative("sigma", sigma)
    noisy = image + as_generator(rng).standard_normal(image.shape, dtype=np.float32) * np.float32(sigma / 255.0)
    return np.clip(noisy, 0.0, 1.0) if clip else noisy


def poisson_gaussian_noise(
    image: np.ndarray, peak: float, sigma: float, rng: np.random.Generator | int, *, clip: bool = True
) -> np.ndarray:
    """Sensor-like noise: photon shot noise (Poisson, ``peak`` photons at white) plus Gaussian read noise
    (σ on 0–255). Lower peak = darker scene = noisier; clipped to [0, 1] by default, as a camera would."""
    image = _check_image(image)
    peak = _check_non_negative("peak", peak)
    if peak == 0:
        raise ValueError("peak must be > 0 photons at white")
    generator = as_generator(rng)
    shot = generator.poisson(np.clip(image, 0.0, None).astype(np.float64) * peak) / peak
    noisy = (shot + generator.standard_normal(image.shape) * (_check_non_negative("sigma", sigma) / 255.0)).astype(
        np.float32
    )
    return np.clip(noisy, 0.0, 1.0) if clip else noisy


# --- rain -----------------------------------------------------------------------------------------


def streak_kernel(length: float, width: float, angle: float) -> np.ndarray:
    """One rain streak as a kernel of peak 1: a line ``length`` px long with a Gaussian cross-section of
    full width at half maximum ``width`` px, soft tapered ends, tilted ``angle`` degrees from vertical
    (positive leans the top to the left, i.e. rain falling to the right)."""
    length = max(_check_non_negative("length", length), 1.0)
    width = max(_check_non_negative("width", width), 0.5)
    radius = math.ceil(length / 2 + 2 * width) + 1
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1].astype(np.float64)
    theta = math.radians(angle)
    along = y * math.cos(theta) + x * math.sin(theta)
    across = -y * math.sin(theta) + x * math.cos(theta)
    sigma = width / 2.355
    cross_section = np.exp(-0.5 * (across / sigma) ** 2)
    taper = np.clip((length / 2 - np.abs(along)) / (0.25 * length) + 0.5, 0.0, 1.0)
    kernel = cross_section * np.sin(0.5 * math.pi * taper) ** 2
    return kernel / kernel.max()


def rain_layer(
    shape: tuple[int, int],
    rng: np.random.Generator | int,
    *,
    length: float,
    width: float,
    angle: float,
    density: float,
) -> np.ndarray:
    """An H×W streak layer in [0, 1]: random drop seeds (``density`` per pixel, random brightness) smeared
    along the fall direction. The layer tiles seamlessly (periodic), like a stationary rain field."""
    generator = as_generator(rng)
    density = _check_non_negative("density", density)
    seeds = generator.random(shape)
    brightness = generator.uniform(0.3, 1.0, shape)
    field = np.where(seeds < density, brightness, 0.0)
    return np.clip(_convolve_periodic(field, streak_kernel(length, width, angle)), 0.0, 1.0)


def rain_streaks(
    image: np.ndarray,
    rng: np.random.Generator | int,
    *,
    layers: int = 1,
    angle: float = 0.0,
    angle_spread: float = 5.0,
    length: float = 20.0,
    width: float = 1.5,
    density: float = 0.004,
    opacity: float = 0.7,
) -> np.ndarray:
    """Add ``layers`` streak layers, near to far: each farther layer has shorter, thinner, fainter and
    denser streaks, and a direction within ±``angle_spread`` degrees of ``angle``. Layers are blended
    with "screen" (1 − (1 − J)(1 − R)), so streaks brighten the scene without clipping to flat white."""
    image = _check_image(image)
    if int(layers) < 1:
        raise ValueError(f"layers must be >= 1, got {layers}")
    generator = as_generator(rng)
    transmitted = 1.0 - image.astype(np.float64)
    for layer in range(int(layers)):
        nearness = 1.0 - 0.45 * layer / max(int(layers) - 1, 1)
        streaks = rain_layer(
            image.shape[:2],
            generator,
            length=length * nearness,
            width=width * nearness,
            angle=angle + generator.uniform(-angle_spread, angle_spread),
            density=density / nearness,
        )
        transmitted *= 1.0 - (opacity * (0.5 + 0.5 * nearness)) * streaks[..., None]
    return (1.0 - transmitted).astype(np.float32)


# --- haze -----------------------------------------------------------------------------------------


def synthetic_depth(image: np.ndarray, rng: np.random.Generator | int) -> np.ndarray:
    """A plausible relative depth map in [0, 1] (1 = far) for an outdoor photo without a depth map.

    Combines the usual outdoor layout (the scene recedes towards the top of the frame), the dark-channel
    cue (bright, colourless regions such as sky are far; haze-free near objects have a dark channel) and a
    faint smooth random field, so haze thickens with distance and follows object boundaries.
    """
    image = _check_image(image)
    generator = as_generator(rng)
    height, width = image.shape[:2]
    scale = max(height, width)
    rows = np.linspace(1.0, 0.0, height)[:, None] ** generator.uniform(0.7, 1.4)
    vertical = np.broadcast_to(rows, (height, width))
    dark = convolve(image.min(axis=2, keepdims=True), gaussian_kernel(max(1.0, scale / 200)))[..., 0]
    sky = np.clip((dark - 0.45) / 0.35, 0.0, 1.0)
    field = convolve(generator.standard_normal((height, width, 1)), gaussian_kernel(scale / 12))[..., 0]
    field = field / (np.abs(field).max() + 1e-12)
    depth = np.maximum(0.75 * vertical + 0.1 * field, sky)
    depth = convolve(depth[..., None], gaussian_kernel(max(1.0, scale / 250)))[..., 0]
    low, high = depth.min(), depth.max()
    return ((depth - low) / (high - low + 1e-12)).astype(np.float32)


def haze(
    image: np.ndarray,
    beta: float,
    airlight: float | Sequence[float],
    depth: np.ndarray,
) -> np.ndarray:
    """Atmospheric scattering I = J·t + A·(1 − t) with transmission t = exp(−β·depth).

    ``depth`` is H×W in the units β expects (RESIDE: β ∈ [0.04, 0.2] with outdoor depths of metres to
    tens of metres); ``airlight`` is a grey level or an RGB triple in [0, 1].
    """
    image = _check_image(image)
    depth = np.asarray(depth, dtype=np.float64)
    if depth.shape != image.shape[:2]:
        raise ValueError(f"depth must be H×W = {image.shape[:2]}, got {depth.shape}")
    if not np.all(np.isfinite(depth)) or depth.min(initial=0) < 0:
        raise ValueError("depth must be finite and >= 0")
    airlight_rgb = np.broadcast_to(np.asarray(airlight, dtype=np.float64), (3,))
    if np.any(airlight_rgb < 0) or np.any(airlight_rgb > 1):
        raise ValueError(f"airlight must be in [0, 1], got {airlight}")
    transmission = np.exp(-_check_non_negative("beta", beta) * depth)[..., None]
    return (image * transmission + airlight_rgb * (1.0 - transmission)).astype(np.float32)


# --- blur -----------------------------------------------------------------------------------------


def camera_shake_kernel(length: float, rng: np.random.Generator | int, *, samples: int = 1024) -> np.ndarray:
    """A random hand-shake blur kernel whose trajectory spans ``length`` pixels, normalised to sum 1.

    The camera path is a sum of a few random low-frequency oscillations (amplitude falling as 1/f^1.5,
    like hand tremor) plus a random drift; sampling it uniformly in time makes the kernel brighter where
    the camera moved slowly, as in real shake. The kernel is centred on its centre of mass, so blurring
    does not shift the image against its sharp target.
    """
    length = _check_non_negative("length", length)
    generator = as_generator(rng)
    if length < 1:
        return np.ones((1, 1))
    time = np.linspace(0.0, 1.0, samples)
    frequencies = np.arange(1, 5)[:, None]
    amplitudes = generator.standard_normal((2, 4, 1)) / frequencies**1.5
    phases = generator.uniform(0, 2 * math.pi, (2, 4, 1))
    path = (amplitudes * np.sin(math.pi * frequencies * time + phases)).sum(axis=1)
    path += generator.standard_normal((2, 1)) * generator.uniform(0.0, 2.0) * time
    extent = np.ptp(path, axis=1).max()
    path *= (length - 1) / max(extent, 1e-12)
    path -= path.mean(axis=1, keepdims=True)
    radius = math.ceil(np.abs(path).max()) + 1
    size = 2 * radius + 1
    kernel = np.zeros((size, size))
    y, x = path[0] + radius, path[1] + radius
    y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
    fy, fx = y - y0, x - x0
    for dy, dx, weight in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        np.add.at(kernel, (y0 + dy, x0 + dx), weight)
    return kernel / kernel.sum()


def blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Blur with a given kernel (e.g. :func:`camera_shake_kernel`); borders are reflected."""
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 2 or kernel.min(initial=0) < 0 or not np.isclose(kernel.sum(), 1.0):
        raise ValueError("kernel must be a 2-D non-negative array summing to 1")
    return np.clip(convolve(_check_image(image), kernel), 0.0, 1.0)


def defocus_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Out-of-focus blur approximated by a Gaussian of ``sigma`` pixels."""
    return blur(image, gaussian_kernel(sigma))


# --- low light ------------------------------------------------------------------------------------


def low_light(
    image: np.ndarray, rng: np.random.Generator | int, *, exposure: float, peak: float, read_sigma: float,
    gamma: float = 2.2,
) -> np.ndarray:
    """An under-exposed photo of the scene: linearise with ``gamma``, scale by ``exposure``, add sensor noise
    (:func:`poisson_gaussian_noise`: ``peak`` photons at white for this exposure, read noise ``read_sigma``)
    and re-encode with the gamma. Dark, noisy and colour-faithful, like the LOL pairs' inputs."""
    image = _check_image(image)
    exposure = _check_non_negative("exposure", exposure)
    if not 0 < exposure <= 1:
        raise ValueError(f"exposure must be in (0, 1], got {exposure}")
    gamma = _check_non_negative("gamma", gamma)
    if gamma == 0:
        raise ValueError("gamma must be > 0")
    linear = np.clip(image, 0.0, 1.0) ** gamma * exposure
    noisy = poisson_gaussian_noise(linear / exposure, peak, read_sigma / exposure, rng) * exposure
    return (np.clip(noisy, 0.0, 1.0) ** (1.0 / gamma)).astype(np.float32)


# --- compression ----------------------------------------------------------------------------------


def quantize(image: np.ndarray, bits: int = 8) -> np.ndarray:
    """Clip to [0, 1] and round to ``bits``-bit levels, as storing the image in an integer file does."""
    if not 1 <= bits <= 16:
        raise ValueError(f"quantize bits must be in 1..16, got {bits}")
    levels = np.float32(2**bits - 1)
    return np.round(np.clip(_check_image(image), 0.0, 1.0) * levels) / levels


def jpeg_compress(image: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip through 8-bit JPEG at ``quality`` (1–100; 4:2:0 chroma subsampling below 90, as
    cameras and Pillow do)."""
    image = _check_image(image)
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    pixels = np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=int(quality))
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"), dtype=np.float32) / 255.0


# --- one entry point by task ----------------------------------------------------------------------

Level = str | Sequence[str] | Mapping[str, Any]


def _draw(name: str, spec: Any, generator: np.random.Generator) -> Any:
    """A concrete value from a parameter spec: fixed, (low, high) / {min, max} range, list / {choice}.

    A choice may hold ranges, which makes a mixture: ``{choice: [{min: 0, max: 25}, {min: 0, max: 50}]}``
    draws three quarters of its values below 25.
    """
    if isinstance(spec, Mapping):
        if set(spec) == {"min", "max"}:
            spec = (spec["min"], spec["max"])
        elif set(spec) == {"choice"}:
            spec = list(spec["choice"])
        else:
            raise ValueError(f"parameter {name!r}: a mapping must be {{min, max}} or {{choice}}, got {dict(spec)}")
    if isinstance(spec, tuple):
        if len(spec) != 2 or not all(isinstance(bound, (int, float)) for bound in spec) or spec[0] > spec[1]:
            raise ValueError(f"parameter {name!r}: a range must be (low, high) numbers with low <= high, got {spec}")
        if name in _INTEGER_PARAMETERS:
            return int(generator.integers(int(spec[0]), int(spec[1]) + 1))
        return float(generator.uniform(*spec))
    if isinstance(spec, list):
        if not spec:
            raise ValueError(f"parameter {name!r}: empty list of choices")
        return _draw(name, spec[int(generator.integers(len(spec)))], generator)
    if isinstance(spec, (int, float, np.integer, np.floating)) and not isinstance(spec, bool):
        return int(spec) if name in _INTEGER_PARAMETERS else float(spec)
    if spec is None or isinstance(spec, str):
        return spec
    raise ValueError(f"parameter {name!r}: cannot use {spec!r}; give a number, a (low, high) range or a list")


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")


def sample_parameters(task: str, level: Level, rng: np.random.Generator | int) -> dict[str, Any]:
    """Concrete parameters for one image: from a named level, a list of names (one drawn), or a mapping
    of explicit values/ranges/choices that overrides a base level (``"level"`` key: a name or a list of names
    to draw from; default "medium")."""
    _check_task(task)
    generator = as_generator(rng)
    if isinstance(level, str):
        level = {"level": level}
    elif isinstance(level, Sequence):
        names = list(level)
        if not names or not all(isinstance(name, str) for name in names):
            raise ValueError(f"a list of levels must name levels, e.g. ['low', 'high'], got {level!r}")
        level = {"level": names[int(generator.integers(len(names)))]}
    elif not isinstance(level, Mapping):
        raise TypeError(f"level must be a name, a list of names or a mapping, got {type(level).__name__}")
    overrides = dict(level)
    base = overrides.pop("level", "medium")
    if isinstance(base, Sequence) and not isinstance(base, str):
        if not base:
            raise ValueError("an empty list of levels")
        base = base[int(generator.integers(len(base)))]
    if base not in LEVELS[task]:
        raise ValueError(f"unknown level {base!r} for {task}; choose one of {', '.join(LEVELS[task])}")
    known = {**LEVELS[task][base], **_OPTIONAL_PARAMETERS}
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ValueError(f"unknown {task} parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    for name, value in overrides.items():  # only deblur's kind is a word; every other parameter is a number
        if isinstance(value, str) and not isinstance(known[name], str):
            raise ValueError(f"{task} parameter {name!r}: expected a number, a range or a list, got {value!r}")
    specs = {**known, **overrides}
    drawn = {"level": base}
    drawn.update({name: _draw(name, spec, generator) for name, spec in specs.items()})
    if task == "deblur":
        if drawn["kind"] not in ("motion", "defocus"):
            raise ValueError(f"deblur kind must be 'motion' or 'defocus', got {drawn['kind']!r}")
        drawn.pop("defocus_sigma" if drawn["kind"] == "motion" else "length")
    return drawn


def apply_degradation(
    image: np.ndarray,
    task: str,
    parameters: Mapping[str, Any],
    rng: np.random.Generator | int,
    *,
    depth: np.ndarray | None = None,
) -> np.ndarray:
    """Degrade with concrete parameters (as returned by :func:`sample_parameters`)."""
    _check_task(task)
    image = _check_image(image)
    generator = as_generator(rng)
    if depth is not None and task != "dehaze":
        raise ValueError(f"a depth map only applies to dehaze, not {task}")
    p = parameters
    if task == "denoise":
        degraded = gaussian_noise(image, p["sigma"], generator)
    elif task == "derain":
        degraded = rain_streaks(
            image, generator, layers=p["layers"], angle=p["angle"], angle_spread=p["angle_spread"],
            length=p["length"], width=p["width"], density=p["density"], opacity=p["opacity"],
        )
    elif task == "dehaze":
        scene_depth = synthetic_depth(image, generator) * p["max_depth"] if depth is None else depth
        degraded = haze(image, p["beta"], p["airlight"], scene_depth)
    elif task == "enhance":
        degraded = low_light(
            image, generator, exposure=p["exposure"], peak=p["peak"], read_sigma=p["read_sigma"], gamma=p["gamma"]
        )
    elif p["kind"] == "motion":
        degraded = blur(image, camera_shake_kernel(p["length"], generator))
        degraded = gaussian_noise(degraded, p["noise_sigma"], generator, clip=True)
    else:
        degraded = defocus_blur(image, p["defocus_sigma"])
        degraded = gaussian_noise(degraded, p["noise_sigma"], generator, clip=True)
    if p.get("jpeg_quality") is not None:
        degraded = jpeg_compress(degraded, p["jpeg_quality"])
    if p.get("quantize_bits") is not None:
        degraded = quantize(degraded, p["quantize_bits"])
    return degraded


def degrade(
    image: np.ndarray,
    task: str,
    level: Level = "medium",
    rng: np.random.Generator | int = 0,
    *,
    depth: np.ndarray | None = None,
) -> Degraded:
    """Degrade a float H×W×3 image in [0, 1] for ``task`` at ``level``; returns the image and parameters.

    ``depth`` (dehaze only) replaces the synthetic depth prior with a real H×W depth map in β's units.
    """
    generator = as_generator(rng)
    parameters = sample_parameters(task, level, generator)
    return Degraded(apply_degradation(image, task, parameters, generator, depth=depth), parameters)

