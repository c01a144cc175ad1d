"""Write docs/maxim_<task>.png: input | bundled ConStyle model | Google's MAXIM, on each package's fixture.

Needs the MAXIM packages installed (`irconstyle install …`, see README); the inputs are the 256×256 crops of the
packages' fixtures kept in tests/assets/maxim.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import irconstyle
from irconstyle.data.io import read_image, write_image
from irconstyle.restoration import side_by_side

ROOT = Path(__file__).resolve().parents[1]
CASES = [  # (package folder, our bundled task, installed MAXIM name)
    ("deblurring", "deblur", "maxim-deblur"),
    ("deraining", "derain", "maxim-derain"),
    ("dehazing-outdoor", "dehaze", "maxim-dehaze-outdoor"),
    ("denoising", "denoise", "maxim-denoise"),
]


def main() -> None:
    for package, task, maxim in CASES:
        image = read_image(ROOT / "tests" / "assets" / "maxim" / package / "fixture_input.png")
        bundled = irconstyle.restore(image, task=task)
        google = irconstyle.restore(image, model=maxim, tile=None)
        row = side_by_side(side_by_side(image, bundled), google)
        write_image(ROOT / "docs" / f"maxim_{task}.png", np.ascontiguousarray(row))
        print(f"docs/maxim_{task}.png")


if __name__ == "__main__":
    main()
