"""Benchmark folders as distributed: each layout's pairing, detection, the unpaired-file errors, and the training
and validation datasets that read them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from irconstyle.data.datasets import DatasetError, paired, paired_benchmark
from irconstyle.data.io import image_to_tensor, read_image, write_image
from irconstyle.data.layouts import LAYOUTS, detect_layout, scan_benchmark_folder
from irconstyle.training.config import config_from_dict
from irconstyle.training.data import build_train_dataset, build_val_dataset


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


def test_what_irconstyle_degrade_writes_reads_back_as_lq_gt(tmp_path):
    from irconstyle.data.datasets import degrade_folder

    _write(tmp_path / "clean", "a.png", "b.png")
    degrade_folder(tmp_path / "clean", tmp_path / "pairs", "denoise")
    assert detect_layout(tmp_path / "pairs").name == "lq-gt"
    assert _triples(tmp_path / "pairs") == [("a.png", "lq/a.png", "gt/a.png"), ("b.png", "lq/b.png", "gt/b.png")]


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


def test_hide_pairs_both_test_folders_with_gt_by_name_and_leaves_the_training_images_out(tmp_path):
    _write(tmp_path, "GT/a.png", "GT/b.png", "GT/t.png", "train/t.png",
           "test/test-close-ups/a.png", "test/test-long-shot/b.png")
    assert detect_layout(tmp_path).name == "hide"
    assert _triples(tmp_path) == [
        ("test/test-close-ups/a.png", "test/test-close-ups/a.png", "GT/a.png"),
        ("test/test-long-shot/b.png", "test/test-long-shot/b.png", "GT/b.png"),
    ]


def test_a_hide_test_image_without_its_sharp_one_names_the_gt_folder(tmp_path):
    _write(tmp_path, "GT/a.png", "test/test-close-ups/a.png", "test/test-long-shot/c.png")
    expected = rf"no clean image in {re.escape(str(tmp_path / 'GT'))} for 1 degraded image: .*test-long-shot/c\.png$"
    with pytest.raises(DatasetError, match=expected):
        scan_benchmark_folder(tmp_path)


def _cbsd68(root: Path) -> None:
    """CBSD68 with its JPEG originals, lossless copies and two pre-noised versions, as distributed."""
    _write(root, "original/101085.jpg", "original/101087.jpg", "original_png/0000.png", "original_png/0001.png",
           *(f"noisy{sigma}/{name}" for sigma in (25, 50) for name in ("0000.png", "0001.png")))


def test_cbsd68_as_distributed_is_its_lossless_clean_images(tmp_path):
    _cbsd68(tmp_path)
    layout = detect_layout(tmp_path)
    assert layout.name == "cbsd68" and not layout.paired
    assert _triples(tmp_path) == [(name, None, f"original_png/{name}") for name in ("0000.png", "0001.png")]


def test_a_cbsd68_noisy_folder_pairs_with_the_lossless_clean_images_beside_it(tmp_path):
    _cbsd68(tmp_path)
    folder = scan_benchmark_folder(tmp_path / "noisy25")
    assert folder.layout.name == "cbsd68-noisy" and folder.layout.paired
    assert [(image.name, image.lq, image.gt) for image in folder.images] == [
        (f"noisy25/{name}", tmp_path / "noisy25" / name, tmp_path / "original_png" / name)
        for name in ("0000.png", "0001.png")
    ]


def test_a_folder_named_noisy_without_clean_images_beside_it_is_a_clean_folder(tmp_path):
    _write(tmp_path, "noisy25/0000.png")
    assert detect_layout(tmp_path / "noisy25").name == "clean"


def test_rain14000_pairs_every_rendering_with_its_clean_image(tmp_path):
    _write(tmp_path, "rainy_image/7_1.jpg", "rainy_image/7_2.jpg", "ground_truth/7.jpg")
    assert _triples(tmp_path) == [
        ("rainy_image/7_1.jpg", "rainy_image/7_1.jpg", "ground_truth/7.jpg"),
        ("rainy_image/7_2.jpg", "rainy_image/7_2.jpg", "ground_truth/7.jpg"),
    ]


# --- the training and validation datasets read the same layouts


def _pairs_of(dataset) -> list[tuple[str, str]]:
    return [(pair.lq.name, pair.gt.name) for pair in dataset.pairs]


def test_a_paired_dataset_reads_a_root_in_its_detected_or_named_layout(tmp_path):
    _write(tmp_path / "Rain100H", "rain-001.png", "rain-002.png", "norain-001.png", "norain-002.png")
    expected = [("rain-001.png", "norain-001.png"), ("rain-002.png", "norain-002.png")]
    assert _pairs_of(paired(root=tmp_path / "Rain100H")) == expected
    assert _pairs_of(paired(root=tmp_path / "Rain100H", layout="rain100")) == expected
    sample = paired(root=tmp_path / "Rain100H")[1]
    assert sample["name"] == "rain-002"
    assert torch.equal(sample["gt"], image_to_tensor(read_image(tmp_path / "Rain100H/norain-002.png")))
    with pytest.raises(DatasetError, match=r"Rain100H: not in the gopro layout"):
        paired(root=tmp_path / "Rain100H", layout="gopro")


def test_a_paired_root_takes_the_layouts_centre_crop_unless_told(tmp_path):
    _write(tmp_path, "hazy/1400_1.png")
    _write(tmp_path, "gt/1400.png", side=20)
    assert paired(root=tmp_path).center_crop_gt
    assert not paired(root=tmp_path, center_crop_gt=False).center_crop_gt
    assert tuple(paired(root=tmp_path)[0]["gt"].shape) == (3, 16, 16)


def test_a_paired_dataset_is_either_folders_or_a_root(tmp_path):
    _write(tmp_path, "input/1.png", "target/1.png", "kodim01.png")
    with pytest.raises(DatasetError, match="a dataset folder pairs its own files; drop lq_dir, pairing$"):
        paired(root=tmp_path, lq_dir=tmp_path / "input", pairing="same_stem")
    with pytest.raises(DatasetError, match="needs lq_dir and gt_dir, or root"):
        paired(lq_dir=tmp_path / "input")
    with pytest.raises(DatasetError, match="layout 'rain100' names the layout of a root folder"):
        paired(lq_dir=tmp_path / "input", gt_dir=tmp_path / "target", layout="rain100")
    with pytest.raises(DatasetError, match=rf"^{re.escape(str(tmp_path))}: clean images only \(clean layout\)"):
        paired(root=tmp_path, layout="clean")


def test_a_paired_benchmark_reads_any_layout_it_is_distributed_in(tmp_path):
    _write(tmp_path / "as-distributed", "rain-001.png", "norain-001.png")
    _write(tmp_path / "restormer", "input/rain-001.png", "target/rain-001.png")
    assert _pairs_of(paired_benchmark(benchmark="rain100h", root=tmp_path / "as-distributed")) == [
        ("rain-001.png", "norain-001.png")
    ]
    assert _pairs_of(paired_benchmark(benchmark="rain100h", root=tmp_path / "restormer")) == [
        ("rain-001.png", "rain-001.png")
    ]
    _write(tmp_path / "HIDE_dataset", "GT/a.png", "GT/t.png", "train/t.png", "test/test-long-shot/a.png")
    assert _pairs_of(paired_benchmark(benchmark="hide", root=tmp_path / "HIDE_dataset")) == [("a.png", "a.png")]
    with pytest.raises(DatasetError, match="not a realblur-j folder"):
        paired_benchmark(benchmark="realblur-j", root=tmp_path / "as-distributed")
    with pytest.raises(DatasetError, match="cbsd68 has clean images only"):
        paired_benchmark(benchmark="cbsd68", root=tmp_path / "as-distributed")


def test_a_config_trains_on_gopro_sequences_and_validates_on_rain100h_as_distributed(tmp_path):
    for sequence in ("GOPR0372_07_00", "GOPR0374_11_00"):
        _write(tmp_path / "GoPro" / "train", *(f"{sequence}/{kind}/000047.png" for kind in ("blur", "sharp")))
    _write(tmp_path / "Rain100H", "rainy/rain-001.png", "norain/norain-001.png")
    config = config_from_dict({
        "name": "layouts",
        "model": {"name": "nafnet"},
        "data": {
            "train": {"dataset": "paired", "options": {"root": str(tmp_path / "GoPro" / "train")},
                      "batch_size": 2, "patch_size": 8},
            "val": {"dataset": "paired", "options": {"root": str(tmp_path / "Rain100H"), "layout": "rain100"}},
        },
    })
    train = build_train_dataset(config)
    assert [pair.lq.relative_to(tmp_path).as_posix() for pair in train.pairs] == [
        "GoPro/train/GOPR0372_07_00/blur/000047.png", "GoPro/train/GOPR0374_11_00/blur/000047.png"
    ]
    assert tuple(train[0]["lq"].shape) == (3, 8, 8)
    validation = build_val_dataset(config)
    assert _pairs_of(validation) == [("rain-001.png", "norain-001.png")]
    assert tuple(validation[0]["lq"].shape) == (3, 16, 16)
