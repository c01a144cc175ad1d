"""The models shipped in the package load offline, really restore a held-out photo, and have complete model cards."""

import re
import runpy
from pathlib import Path

import numpy as np
import pytest
import yaml

from irconstyle.data.degradations import degrade
from irconstyle.data.io import float_to_image, image_to_float, read_image
from irconstyle.metrics import psnr
from irconstyle.restoration import TASKS, bundled_model_path, resolve, restore
from irconstyle.zoo.pretrained import BUNDLED, BUNDLED_FACTS

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
    restored = restore(degraded, model=resolve(task))
    assert restored.shape == clean.shape and restored.dtype == np.uint8
    assert psnr(restored, clean) > psnr(degraded, clean) + MINIMUM_GAIN_DB[task]


CARD_SECTIONS = ("Intended use", "Limitations", "Training data", "Licence", "Scores")
_EXPORT = Path(__file__).resolve().parents[1] / "scripts" / "export_bundled.py"


def card_placeholder_start() -> str:
    """How the card exporter's placeholder for an unwritten section begins."""
    return runpy.run_path(str(_EXPORT), run_name="export_bundled")["PLACEHOLDER"].split("{", 1)[0]


@pytest.mark.parametrize("name", [*TASKS, "detect"])
def test_every_bundled_file_records_its_licence_source_and_training(name, tmp_path):
    from irconstyle import load
    from irconstyle.export import export_model, read_export_metadata

    descriptor = load(bundled_model_path("denoise").with_name(f"{name}.safetensors"))
    assert (descriptor.licence, descriptor.source, descriptor.training_data) == tuple(BUNDLED_FACTS.values())
    stages = descriptor.metadata["stages"]  # what scripts/export_bundled.py needs to export a later stage
    assert sum(stage["iterations"] for stage in stages) == descriptor.metadata["iterations"]
    if name == "deblur":  # small enough to export in a test; every export copies the descriptor's facts
        metadata = read_export_metadata(export_model(descriptor, tmp_path / "deblur.onnx").path)
        assert (metadata["licence"], metadata["source"]) == (BUNDLED_FACTS["licence"], BUNDLED_FACTS["source"])


@pytest.mark.parametrize("name", [*TASKS, "detect"])
def test_every_model_card_has_its_metadata_and_sections(name):
    text = bundled_model_path("denoise").with_name(f"{name}.md").read_text(encoding="utf-8")
    front_matter, _, body = text.removeprefix("---\n").partition("\n---\n")
    licence = BUNDLED[name].licence if name in BUNDLED else "MIT"  # the classifier is not a pretrained entry
    assert text.startswith("---\n") and yaml.safe_load(front_matter)["license"] == licence.lower()
    sections = dict(re.findall(r"^## ([^\n]+)\n(.*?)(?=^## |\Z)", body, flags=re.MULTILINE | re.DOTALL))
    for title in CARD_SECTIONS:
        assert sections.get(title, "").strip(), f"{name}.md has no '{title}' section"
        assert not sections[title].strip().startswith(card_placeholder_start()), f"{name}.md: '{title}' unwritten"
