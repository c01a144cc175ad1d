"""Write input | bundled ConStyle model | Google's MAXIM pictures for docs/models.md.

``docs/maxim_<task>.png``: on each package's own fixture (the 256×256 crops kept in tests/assets/maxim).
``docs/maxim_<model>_heldout.png``: on one held-out photo (``HELD_OUT``) degraded as ``benchmarks/maxim_quality.py``
degrades it (the whole photo, the same seed, stored as 8 bits), then its centre 256×256 crop restored by both.

Needs the MAXIM packages installed (`irconstyle install …`, see README) and the photos (scripts/prepare_photos.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import irconstyle
from irconstyle.data.datasets import list_images
from irconstyle.data.degradations import degrade
from irconstyle.data.io import float_to_image, image_to_float, read_image, write_image
from irconstyle.evaluation import parse_degradation
from irconstyle.restoration import side_by_side

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_CASES = [  # (package folder, our bundled task, installed MAXIM name)
    ("deblurring", "deblur", "maxim-deblur"),
    ("deraining", "derain", "maxim-derain"),
    ("dehazing-outdoor", "dehaze", "maxim-dehaze-outdoor"),
    ("denoising", "denoise", "maxim-denoise"),
]
HELD_OUT = "skimage_chelsea.png"
HELD_OUT_CASES = [  # (installed MAXIM name, our task, level as benchmarks/maxim_quality.py scores it)
    ("maxim-deblur", "deblur", "medium"),
    ("maxim-denoise", "denoise", "25"),
    ("maxim-derain", "derain", "medium"),
    ("maxim-dehaze-outdoor", "dehaze", "medium"),
    ("maxim-dehaze-indoor", "dehaze", "medium"),
]
CROP = 256


def _row(image: np.ndarray, task: str, maxim: str) -> np.ndarray:
    bundled = irconstyle.restore(image, task=task)
    google = irconstyle.restore(image, model=maxim, tile=None)
    return np.ascontiguousarray(side_by_side(side_by_side(image, bundled), google))


def _centre_crop(image: np.ndarray) -> np.ndarray:
    top, left = (image.shape[0] - CROP) // 2, (image.shape[1] - CROP) // 2
    return image[top : top + CROP, left : left + CROP]


def fixture_pictures() -> None:
    for package, task, maxim in FIXTURE_CASES:
        image = read_image(ROOT / "tests" / "assets" / "maxim" / package / "fixture_input.png")
        write_image(ROOT / "docs" / f"maxim_{task}.png", _row(image, task, maxim))
        print(f"docs/maxim_{task}.png")


def held_out_pictures(photos: Path) -> None:
    paths = list_images(photos)
    index = [path.name for path in paths].index(HELD_OUT)  # evaluate() seeds image i with seed 0 + i
    clean = image_to_float(read_image(paths[index]))
    for maxim, task, level in HELD_OUT_CASES:
        degradation = parse_degradation(f"{task}:{level}", quantize_bits=8)
        degraded = float_to_image(degrade(clean, degradation[0], degradation[1], index).image)
        write_image(ROOT / "docs" / f"{maxim}_heldout.png", _row(_centre_crop(degraded), task, maxim))
        print(f"docs/{maxim}_heldout.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=ROOT / "data" / "photos" / "val")
    parser.add_argument("--only", choices=["fixtures", "held-out"], help="write one kind of picture")
    args = parser.parse_args()
    if args.only != "held-out":
        fixture_pictures()
    if args.only != "fixtures":
        held_out_pictures(args.photos)


if __name__ == "__main__":
    main()
