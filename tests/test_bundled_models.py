"""The models shipped in the package load offline and really restore a held-out photo."""

from pathlib import Path

import numpy as np
import pytest

from irconstyle.data.degradations import degrade
from irconstyle.data.io import float_to_image, image_to_float, read_image
from irconstyle.metrics import psnr
from irconstyle.restoration import TASKS, bundled_model_path, resolve_model, restore

HELD_OUT = Path(__file__).parent / "assets" / "photos" / "val" / "chelsea.png"  # never in the training photos
MINIMUM_GAIN_DB = {"denoise": 3.0, "derain": 1.0, "dehaze": 1.0, "deblur": 0.5}


@pytest.mark.parametrize("task", TASKS)
def test_every_task_ships_a_model_with_its_card(task):
    assert bundled_model_path(task).is_file()
    assert bundled_model_path(task).with_suffix(".md").is_file()


def test_bundled_models_fit_the_size_budget():
    assert sum(bundled_model_path(task).stat().st_size for task in TASKS) < 40 * 2**20


@pytest.mark.parametrize("task", TASKS)
def test_bundled_model_restores_a_held_out_photo(task):
    clean = read_image(HELD_OUT)
    level = {"sigma": 25.0, "quantize_bits": 8} if task == "denoise" else {"level": "medium", "quantize_bits": 8}
    degraded = float_to_image(degrade(image_to_float(clean), task, level, 0).image)
    restored = restore(degraded, model=resolve_model(task))
    assert restored.shape == clean.shape and restored.dtype == np.uint8
    assert psnr(restored, clean) > psnr(degraded, clean) + MINIMUM_GAIN_DB[task]
