#!/usr/bin/env python
"""Collect the real photographs that install offline into a training set and a held-out set.

Sources (see docs/models.md): scikit-image and scikit-learn sample images, Debian's ``opencv-doc`` example
photos, ``plasma-workspace-wallpapers`` and ``mate-backgrounds`` photos. Large JPEGs are downscaled (long side
at most ``--max-side``) with a Lanczos filter, which also hides their compression artefacts. The held-out split is
a fixed list of names, so every run gives the same split. A third split, ``check``, holds other images at their
native resolution (small camera JPEGs and a painting), never used for training or for choosing anything: a test
of whether results on the held-out split carry over to another kind of photo.

Downscaling smooths a photo at pixel scale, so a fourth split, ``train-native``, holds the pixel-scale texture the
downscaled copies lose: crops at native resolution of the large training photos, and more small camera photos
(other views of training scenes; none of a held-out or check scene). Training may use it beside ``train``.

The photos above are mostly nature; a fifth split, ``train-manmade``, holds opencv-doc's camera photos of man-made
things with fine texture (newsprint, a page of text, boxes, an office with a chessboard), several of them greyscale
(stored as RGB).

    python scripts/prepare_photos.py data/photos  # writes data/photos/{train,train-native,train-manmade,val,check}/
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

OPENCV = Path("/usr/share/doc/opencv-doc/examples/data")
PLASMA = Path("/usr/share/wallpapers")
MATE = Path("/usr/share/backgrounds/mate")

OPENCV_PHOTOS = ["baboon.jpg", "fruits.jpg", "building.jpg", "butterfly.jpg", "home.jpg", "apple.jpg", "orange.jpg",
                 "squirrel_cls.jpg", "aloeL.jpg", "graf1.png", "leuvenA.jpg", "rubberwhale1.png", "ela_original.jpg",
                 "lena.jpg", "messi5.jpg", "starry_night.jpg"]
PLASMA_PHOTOS = ["BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey", "Kite",
                 "OneStandsOut", "Path", "summer_1am"]
MATE_PHOTOS = ["Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops", "Storm",
               "TwoWings", "Wood", "YellowFlower"]
SKIMAGE_PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry"]

CHECK_IMAGES = {"opencv_aero1": OPENCV / "aero1.jpg", "opencv_board": OPENCV / "board.jpg",
                "opencv_stuff": OPENCV / "stuff.jpg", "opencv_chicky_512": OPENCV / "chicky_512.png",
                "mate_Elephants": MATE / "abstract" / "Elephants.jpg"}

# Other views of training scenes, and one more photo; aero3 is left out because aero1 is a check image.
NATIVE_OPENCV_PHOTOS = ["graf3.png", "leuvenB.jpg", "aloeR.jpg", "rubberwhale2.png", "ela_modified.jpg",
                        "smarties.png", "HappyFish.jpg"]
NATIVE_CROP = 1024

MANMADE_OPENCV_PHOTOS = ["left.jpg", "right.jpg", "sudoku.png", "pca_test1.jpg", "imageTextR.png", "basketball1.png",
                         "box_in_scene.png", "left01.jpg", "left05.jpg", "left09.jpg", "right03.jpg", "right07.jpg",
                         "right12.jpg"]

HELD_OUT = {"skimage_chelsea", "sklearn_flower", "opencv_fruits", "opencv_butterfly", "plasma_Kite", "plasma_Path",
            "mate_LadyBird", "mate_Garden"}


def _sources() -> Iterator[tuple[str, Image.Image]]:
    import skimage.data
    from sklearn.datasets import load_sample_images

    for name in SKIMAGE_PHOTOS:
        yield f"skimage_{name}", Image.fromarray(getattr(skimage.data, name)())
    for name, array in zip(("china", "flower"), load_sample_images().images, strict=True):
        yield f"sklearn_{name}", Image.fromarray(array)
    for name in OPENCV_PHOTOS:
        if (OPENCV / name).is_file():
            yield f"opencv_{Path(name).stem}", Image.open(OPENCV / name)
    for name in PLASMA_PHOTOS:
        images = sorted((PLASMA / name / "contents" / "images").glob("*.jpg"),
                        key=lambda p: int(p.stem.split("x")[0]))
        if images:
            yield f"plasma_{name}", Image.open(images[-1])
    for name in MATE_PHOTOS:
        if (MATE / "nature" / f"{name}.jpg").is_file():
            yield f"mate_{name}", Image.open(MATE / "nature" / f"{name}.jpg")


def _native_crops(image: Image.Image, size: int) -> list[Image.Image]:
    """Up to three ``size``-pixel squares at native resolution, from end to end of the long side."""
    width, height = image.size
    side = min(size, width, height)
    along, across = max(width, height) - side, min(width, height) - side
    count = min(3, 1 + along // side)
    starts = [round(along * i / (count - 1)) for i in range(count)] if count > 1 else [along // 2]
    boxes = [(start, across // 2) if width >= height else (across // 2, start) for start in starts]
    return [image.crop((left, top, left + side, top + side)) for left, top in boxes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--max-side", type=int, default=1024)
    args = parser.parse_args()
    splits = ("train", "train-native", "train-manmade", "val", "check")
    for split in splits:
        (args.output / split).mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys(splits, 0)
    for name, image in _sources():
        image = image.convert("RGB")
        if np.asarray(image).std() < 1:
            continue
        held_out = name in HELD_OUT
        scale = args.max_side / max(image.size)
        if scale < 1:
            if not held_out:
                for index, crop in enumerate(_native_crops(image, NATIVE_CROP)):
                    crop.save(args.output / "train-native" / f"{name}_{index}.png")
                    counts["train-native"] += 1
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
        split = "val" if held_out else "train"
        image.save(args.output / split / f"{name}.png")
        counts[split] += 1
    for split, names in (("train-native", NATIVE_OPENCV_PHOTOS), ("train-manmade", MANMADE_OPENCV_PHOTOS)):
        for name in names:
            if (OPENCV / name).is_file():
                Image.open(OPENCV / name).convert("RGB").save(args.output / split / f"opencv_{Path(name).stem}.png")
                counts[split] += 1
    for name, path in CHECK_IMAGES.items():
        if path.is_file():
            Image.open(path).convert("RGB").save(args.output / "check" / f"{name}.png")
            counts["check"] += 1
    print(f"{counts['train']} training ({counts['train-native']} more at native resolution, {counts['train-manmade']} "
          f"of man-made things), {counts['val']} held-out "
          f"and {counts['check']} check images in {args.output}")


if __name__ == "__main__":
    main()
