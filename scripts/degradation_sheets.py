"""Render docs/degradations_<task>.png: real photos, clean and at the low / medium / high levels.

Photos come from packages that install offline (see docs/datasets.md):
  apt-get install opencv-doc plasma-workspace-wallpapers mate-backgrounds; pip install scikit-image
Run: .venv/bin/python scripts/degradation_sheets.py [--out docs] [--tasks derain ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from irconstyle.data.degradations import LEVELS, TASKS, degrade
from irconstyle.data.io import float_to_image, image_to_float, read_image, write_image

TILE = (432, 288)  # width, height: the scale of Rain100H / BSD-sized images
WALLPAPERS = Path("/usr/share/wallpapers")
OPENCV = Path("/usr/share/doc/opencv-doc/examples/data")
MATE = Path("/usr/share/backgrounds/mate/nature")
PHOTOS = {
    "denoise": [OPENCV / "baboon.jpg", "astronaut", MATE / "LadyBird.jpg"],
    "derain": [WALLPAPERS / "Path/contents/images/1280x800.jpg", OPENCV / "building.jpg",
               WALLPAPERS / "EveningGlow/contents/images/1280x800.jpg"],
    "dehaze": [WALLPAPERS / "EveningGlow/contents/images/1280x800.jpg", OPENCV / "leuvenA.jpg",
               "stereo_motorcycle"],
    "deblur": [OPENCV / "home.jpg", "astronaut", OPENCV / "fruits.jpg"],
}


def _fit(image: Image.Image, resample: Image.Resampling) -> Image.Image:
    width, height = TILE
    scale = max(width / image.width, height / image.height)
    image = image.resize((round(image.width * scale), round(image.height * scale)), resample)
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return image.crop((left, top, left + width, top + height))


def load_photo(source: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """A photo as float32 H×W×3 scaled and centre-cropped to the tile size, and its relative depth in [0, 1]
    where the source has one (the Middlebury motorcycle's stereo disparity: depth ∝ 1 / disparity)."""
    depth = None
    if isinstance(source, str):
        from skimage import data

        pixels = getattr(data, source)()
        if source == "stereo_motorcycle":
            pixels, _, disparity = pixels
            valid = np.isfinite(disparity) & (disparity > 0)
            inverse = np.where(valid, 1.0 / np.where(valid, disparity, 1.0), np.inf)  # unknown: far
            depth = np.clip(inverse / np.percentile(inverse[valid], 99), 0.0, 1.0)
    else:
        pixels = read_image(source)
    photo = image_to_float(np.asarray(_fit(Image.fromarray(pixels), Image.Resampling.LANCZOS)))
    if depth is not None:
        depth = np.asarray(_fit(Image.fromarray(depth.astype(np.float32)), Image.Resampling.BILINEAR))
    return photo, depth


def describe(task: str, parameters: dict) -> str:
    shown = {key: value for key, value in parameters.items() if key != "level" and value is not None}
    text = ", ".join(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}"
                     for key, value in shown.items())
    return f"{parameters['level']}: {text}"


def sheet(task: str, seed: int) -> Image.Image:
    width, height = TILE
    label = 30
    rows = PHOTOS[task]
    canvas = Image.new("RGB", (4 * width, len(rows) * (height + label)), "white")
    draw = ImageDraw.Draw(canvas)
    for row, source in enumerate(rows):
        clean, depth = load_photo(source)
        top = row * (height + label)
        tiles = [("clean" + (" (haze depth from stereo disparity)" if depth is not None else ""), clean)]
        for level in ("low", "medium", "high"):
            scene_depth = None if depth is None else depth * LEVELS[task][level]["max_depth"]
            result = degrade(clean, task, level, np.random.default_rng([seed, row]), depth=scene_depth)
            tiles.append((describe(task, result.parameters), result.image))
        for column, (caption, image) in enumerate(tiles):
            canvas.paste(Image.fromarray(float_to_image(image)), (column * width, top + label))
            for line, text in enumerate((caption[:70], caption[70:140])):
                draw.text((column * width + 4, top + 2 + 13 * line), text, fill="black")
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for task in args.tasks:
        path = args.out / f"degradations_{task}.png"
        write_image(path, np.asarray(sheet(task, args.seed)))
        print(path)


if __name__ == "__main__":
    main()
