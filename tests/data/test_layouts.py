"""Benchmark test folders as distributed: each layout's pairing, detection, and the unpaired-file errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from irconstyle.data.datasets import DatasetError
from irconstyle.data.io import write_image
from irconstyle.data.layouts import LAYOUTS, detect_layout, scan_benchmark_folder


def _write(root: Path, *names: str, side: int = 16) -> None:
    for index, name in enumerate(names):
        image = np.random.default_rng(index).integers(0, 256, (side, side, 3), dtype=np.uint8)
        write_image(root / name, image)


def _triples(root: Path, layout: str | None = None) -> list[tuple[str, str | None, str]]:
    """(name, degraded path, clean path) below ``root``, for comparing with what a layout should give."""
    folder = scan_benchmark_folder(root, layout)
    return [
        (image.name, image.lq and image.lq.relative_to(root).as_posix(), image.gt.relative_to(root).as_posix())
        for image in folder.images
    ]


def test_rain100_in_one_folder_pairs_rain_with_norain(tmp_path):
    _write(tmp_path, "rain-001.png", "rain-002.png", "norain-001.png", "norain-002.png")
    assert detect_layout(tmp_path).name == "rain100"
    assert _triples(tmp_path) == [
        ("rain-001.png", "rain-001.png", "norain-001.png"),
        ("rain-002.png", "rain-002.png", "norain-002.png"),
    ]


def test_rain100_in_rainy_and_norain_subfolders(tmp_path):
    _write(tmp_path, "rainy/rain-001.png", "rainy/rain-002.png", "norain/norain-001.png", "norain/norain-002.png")
    assert detect_layout(tmp_path).name == "rain100"
    assert _triples(tmp_path) == [
        ("rainy/rain-001.png", "rainy/rain-001.png", "norain/norain-001.png"),
        ("rainy/rain-002.png", "rainy/rain-002.png", "norain/norain-002.png"),
    ]


def test_sots_outdoor_pairs_hazy_ids_with_clear_images_of_either_format(tmp_path):
    _write(tmp_path, "hazy/0001_0.8_0.2.jpg", "hazy/0002_0.9_0.16.jpg", "clear/0001.png", "clear/0002.jpg")
    layout = detect_layout(tmp_path)
    assert layout.name == "reside" and layout.center_crop_gt
    assert _triples(tmp_path) == [
        ("hazy/0001_0.8_0.2.jpg", "hazy/0001_0.8_0.2.jpg", "clear/0001.png"),
        ("hazy/0002_0.9_0.16.jpg", "hazy/0002_0.9_0.16.jpg", "clear/0002.jpg"),
    ]


def test_sots_indoor_scores_every_hazy_version_against_its_one_clean_image(tmp_path):
    _write(tmp_path, *(f"hazy/1400_{k}.png" for k in range(1, 11)), "gt/1400.png")
    triples = _triples(tmp_path)
    assert len(triples) == 10 and len({name for name, _, _ in triples}) == 10
    assert {gt for _, _, gt in triples} == {"gt/1400.png"}


def test_gopro_test_pairs_per_sequence_and_ignores_blur_gamma(tmp_path):
    for sequence in ("GOPR0384_11_00", "GOPR0385_11_01"):
        _write(tmp_path, *(f"{sequence}/{kind}/000001.png" for kind in ("blur", "blur_gamma", "sharp")))
    assert detect_layout(tmp_path).name == "gopro"
    assert _triples(tmp_path) == [
        (f"{sequence}/000001.png", f"{sequence}/blur/000001.png", f"{sequence}/sharp/000001.png")
        for sequence in ("GOPR0384_11_00", "GOPR0385_11_01")
    ]


def test_input_target_folders(tmp_path):
    _write(tmp_path, "input/1.png", "input/2.png", "target/1.png", "target/2.png")
    assert _triples(tmp_path) == [("1.png", "input/1.png", "target/1.png"), ("2.png", "input/2.png", "target/2.png")]


def test_a_clean_only_folder_has_no_degraded_images(tmp_path):
    _write(tmp_path, "kodim01.png", "kodim02.png")
    layout = detect_layout(tmp_path)
    assert layout.name == "clean" and not layout.paired
    assert _triples(tmp_path) == [("kodim01.png", None, "kodim01.png"), ("kodim02.png", None, "kodim02.png")]


def test_a_named_layout_overrides_detection_and_must_fit(tmp_path):
    _write(tmp_path, "input/1.png", "target/1.png", "extra.png")
    assert detect_layout(tmp_path).name == "input-target"
    assert _triples(tmp_path, "clean") == [("extra.png", None, "extra.png")]
    with pytest.raises(DatasetError, match=r"not in the gopro layout \(<sequence>/blur"):
        scan_benchmark_folder(tmp_path, "gopro")
    with pytest.raises(DatasetError, match="unknown layout 'sots'"):
        scan_benchmark_folder(tmp_path, "sots")


def test_a_folder_of_no_known_layout_names_them_all(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(DatasetError) as error:
        detect_layout(tmp_path)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{tmp_path}: no benchmark layout recognised")
    assert all(f"{name}: " in message for name in LAYOUTS)


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (("rain-001.png", "rain-002.png", "rain-003.png", "norain-001.png"),
         r"no clean image in {root} for 2 degraded images: {root}/rain-002\.png, {root}/rain-003\.png$"),
        (("rain-001.png", "norain-001.png", "norain-004.png"),
         r"no degraded image in {root} for 1 clean image: {root}/norain-004\.png$"),
        (("rain-001.png", "norain-001.png", "notes.png"),
         r"{root}/notes\.png: neither a rain-NNN \(degraded\) nor a norain-NNN \(clean\) image$"),
    ],
)
def test_unpaired_files_are_one_line_errors_naming_the_folder_the_files_and_how_many(tmp_path, names, expected):
    _write(tmp_path, *names)
    with pytest.raises(DatasetError, match=expected.format(root=re.escape(str(tmp_path)))) as error:
        scan_benchmark_folder(tmp_path)
    assert "\n" not in str(error.value)


def test_the_unpaired_error_shows_the_first_files_and_counts_the_rest(tmp_path):
    _write(tmp_path / "GOPR0384_11_00", *(f"blur/{k:06d}.png" for k in range(1, 9)), "sharp/000001.png")
    with pytest.raises(DatasetError, match=r"for 7 degraded images: .*000002\.png, .*000006\.png \(and 2 more\)$"):
        scan_benchmark_folder(tmp_path)
