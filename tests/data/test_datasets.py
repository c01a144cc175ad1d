"""Pairing, benchmark layouts, paired and on-the-fly datasets, determinism, and degrade_folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from irconstyle.data import datasets as ds
from irconstyle.data.io import image_to_float, image_to_tensor, read_image, write_image

RNG = np.random.default_rng(0)


def _photo(height: int = 40, width: int = 48, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _write(folder: Path, names: list[str], **kwargs) -> list[Path]:
    paths = []
    for index, name in enumerate(names):
        write_image(folder / name, _photo(seed=index, **kwargs))
        paths.append(folder / name)
    return paths


def _paired_folders(root: Path, names: list[str]) -> tuple[Path, Path]:
    """lq = 255 − gt, so any misalignment between the two is visible."""
    for index, name in enumerate(names):
        clean = _photo(seed=index)
        write_image(root / "gt" / name, clean)
        write_image(root / "lq" / name, 255 - clean)
    return root / "lq", root / "gt"


def test_list_images_sorted_filtered_and_empty_error(tmp_path: Path) -> None:
    _write(tmp_path, ["b.png", "a.jpg"])
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".hidden.png").write_bytes(b"")
    assert [path.name for path in ds.list_images(tmp_path)] == ["a.jpg", "b.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ds.DatasetError, match="empty: no images"):
        ds.list_images(tmp_path / "empty")
    with pytest.raises(ds.DatasetError, match="nowhere: no such folder"):
        ds.list_images(tmp_path / "nowhere")


def test_pair_by_stem_across_formats(tmp_path: Path) -> None:
    _write(tmp_path / "lq", ["1.jpg", "2.jpg"])
    _write(tmp_path / "gt", ["1.png", "2.png"])
    pairs = ds.pair_folders(tmp_path / "lq", tmp_path / "gt")
    assert [(pair.lq.name, pair.gt.name) for pair in pairs] == [("1.jpg", "1.png"), ("2.jpg", "2.png")]


def test_many_hazy_images_per_clean_one(tmp_path: Path) -> None:
    _write(tmp_path / "hazy", ["0001_0.8_0.2.jpg", "0001_0.9_0.1.jpg", "0002_1_0.04.jpg"])
    _write(tmp_path / "clear", ["0001.jpg", "0002.jpg"])
    pairs = ds.pair_folders(tmp_path / "hazy", tmp_path / "clear", ds.ID_BEFORE_UNDERSCORE)
    assert [pair.gt.stem for pair in pairs] == ["0001", "0001", "0002"]


def test_pairing_errors_name_the_files(tmp_path: Path) -> None:
    _write(tmp_path / "lq", ["1.png", "2.png", "3.png"])
    _write(tmp_path / "gt", ["1.png"])
    with pytest.raises(ds.DatasetError, match=r"no clean image in .*gt for 2 degraded images: .*2\.png, .*3\.png"):
        ds.pair_folders(tmp_path / "lq", tmp_path / "gt")
    _write(tmp_path / "gt", ["2.png", "3.png", "4.png"])
    with pytest.raises(ds.DatasetError, match=r"no degraded image in .*lq for 1 clean image: .*4\.png"):
        ds.pair_folders(tmp_path / "lq", tmp_path / "gt")
    _write(tmp_path / "gt2", ["1.png", "1.jpg"])
    with pytest.raises(ds.DatasetError, match="both have the pairing key '1'"):
        ds.pair_folders(tmp_path / "lq", tmp_path / "gt2")
    strict = ds.PairingRule(gt_pattern=r"norain-(\d+)")
    with pytest.raises(ds.DatasetError, match=r"1\.png: name does not match the clean-image pattern"):
        ds.pair_folders(tmp_path / "lq", tmp_path / "gt", strict)


def test_custom_rule_with_prefixes(tmp_path: Path) -> None:
    _write(tmp_path / "rain", ["rain-001.png", "rain-002.png"])
    _write(tmp_path / "norain", ["norain-001.png", "norain-002.png"])
    rule = ds.PairingRule(lq_pattern=r"rain-(\d+)", gt_pattern=r"norain-(?P<key>\d+)")
    pairs = ds.pair_folders(tmp_path / "rain", tmp_path / "norain", rule)
    assert [pair.gt.name for pair in pairs] == ["norain-001.png", "norain-002.png"]


def test_benchmark_layouts(tmp_path: Path) -> None:
    _write(tmp_path / "Rain13K" / "input", ["1.png"])
    _write(tmp_path / "Rain13K" / "target", ["1.png"])
    assert len(ds.benchmark_pairs("rain13k", tmp_path / "Rain13K")) == 1
    _write(tmp_path / "OTS" / "hazy", ["0005_0.8_0.1.jpg", "0005_1_0.2.jpg"])
    _write(tmp_path / "OTS" / "clear", ["0005.jpg"])
    assert len(ds.benchmark_pairs("OTS", tmp_path / "OTS")) == 2
    _write(tmp_path / "Rain14000" / "rainy_image", [f"7_{k}.jpg" for k in range(1, 4)])
    _write(tmp_path / "Rain14000" / "ground_truth", ["7.jpg"])
    assert len(ds.benchmark_pairs("rain14000", tmp_path / "Rain14000")) == 3
    for sequence in ("GOPR0372_07_00", "GOPR0374_11_00"):
        _write(tmp_path / "GOPRO_Large" / "train" / sequence / "blur", ["000047.png", "000048.png"])
        _write(tmp_path / "GOPRO_Large" / "train" / sequence / "sharp", ["000047.png", "000048.png"])
    pairs = ds.benchmark_pairs("gopro", tmp_path / "GOPRO_Large" / "train")
    assert len(pairs) == 4 and pairs[2].lq.parts[-3] == "GOPR0374_11_00"
    _write(tmp_path / "DFWB" / "DIV2K", ["0001.png"])
    _write(tmp_path / "DFWB" / "BSD400", ["test_001.png"])
    assert len(ds.benchmark_images("dfwb", tmp_path / "DFWB")) == 2


def test_benchmark_errors(tmp_path: Path) -> None:
    with pytest.raises(ds.DatasetError, match="unknown benchmark 'set14'"):
        ds.benchmark_pairs("set14", tmp_path)
    with pytest.raises(ds.DatasetError, match="clean images only"):
        ds.benchmark_pairs("cbsd68", tmp_path)
    with pytest.raises(ds.DatasetError, match="is a paired benchmark"):
        ds.benchmark_images("rain100h", tmp_path)
    with pytest.raises(ds.DatasetError, match=r"not a gopro folder \(expected input/<name> \+ target/<name> .* or "
                       r"<sequence>/blur/<frame> \+ <sequence>/sharp/<frame>"):
        ds.benchmark_pairs("gopro", tmp_path)


def test_paired_whole_images_are_the_files(tmp_path: Path) -> None:
    lq_dir, gt_dir = _paired_folders(tmp_path, ["a.png", "b.png"])
    dataset = ds.PairedImageDataset(ds.pair_folders(lq_dir, gt_dir))
    sample = dataset[1]
    assert sample["name"] == "b"
    assert torch.equal(sample["gt"], image_to_tensor(read_image(gt_dir / "b.png")))
    assert torch.equal(sample["lq"], image_to_tensor(read_image(lq_dir / "b.png")))


def test_paired_crops_and_flips_stay_aligned_and_are_seeded(tmp_path: Path) -> None:
    pairs = ds.pair_folders(*_paired_folders(tmp_path, ["a.png", "b.png"]))
    dataset = ds.PairedImageDataset(pairs, patch_size=16, augment=True, seed=3)
    seen = set()
    for epoch in range(4):
        dataset.set_epoch(epoch)
        for index in range(2):
            sample = dataset[index]
            assert sample["lq"].shape == sample["gt"].shape == (3, 16, 16)
            assert torch.allclose(sample["lq"], 1 - sample["gt"], atol=1e-6)
            seen.add(sample["gt"].numpy().tobytes())
    assert len(seen) == 8  # every (epoch, index) gives a different crop
    dataset.set_epoch(2)
    again = ds.PairedImageDataset(pairs, patch_size=16, augment=True, seed=3)
    again.set_epoch(2)
    assert torch.equal(dataset[1]["gt"], again[1]["gt"])
    other_seed = ds.PairedImageDataset(pairs, patch_size=16, augment=True, seed=4)
    other_seed.set_epoch(2)
    assert not torch.equal(dataset[1]["gt"], other_seed[1]["gt"])
    with pytest.raises(IndexError, match="out of range"):
        dataset[2]


def test_repeated_visits_are_separate_draws_of_the_same_images(tmp_path: Path) -> None:
    pairs = ds.pair_folders(*_paired_folders(tmp_path, ["a.png", "b.png"]))
    dataset = ds.PairedImageDataset(pairs, patch_size=16, seed=3)
    tripled = dataset.repeated(3)
    assert (len(dataset), len(tripled), len(dataset.repeated(1))) == (2, 6, 2)
    assert [tripled[i]["name"] for i in range(6)] == ["a", "b"] * 3
    # the first visit is the unrepeated dataset's sample; later visits are new crops of the same pair
    assert torch.equal(tripled[1]["gt"], dataset[1]["gt"])
    assert len({tripled[i]["gt"].numpy().tobytes() for i in range(6)}) == 6
    assert all(torch.allclose(tripled[i]["lq"], 1 - tripled[i]["gt"], atol=1e-6) for i in range(6))
    degraded = ds.DegradedImageDataset(_write(tmp_path / "clean", ["c.png"]), "denoise", seed=1)
    assert degraded.draws_random_samples and len(degraded.repeated(4)) == 4
    assert not torch.equal(degraded.repeated(2)[0]["lq"], degraded.repeated(2)[1]["lq"])
    fixed = ds.PairedImageDataset(pairs)  # whole images, no flips: a second visit would repeat the sample
    assert not fixed.draws_random_samples and len(fixed.repeated(1)) == 2
    with pytest.raises(ds.DatasetError, match="without random crops"):
        fixed.repeated(2)
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        dataset.repeated(0)


def test_paired_size_problems(tmp_path: Path) -> None:
    write_image(tmp_path / "lq" / "x.png", _photo(30, 40))
    write_image(tmp_path / "gt" / "x.png", _photo(40, 50))
    pairs = ds.pair_folders(tmp_path / "lq", tmp_path / "gt")
    with pytest.raises(ds.DatasetError, match=r"size mismatch: .*x\.png is 40×30 but .*x\.png is 50×40"):
        ds.PairedImageDataset(pairs)[0]
    with pytest.raises(ds.DatasetError, match="1 size mismatch"):
        ds.PairedImageDataset(pairs).verify()
    cropped = ds.PairedImageDataset(pairs, center_crop_gt=True)
    cropped.verify()
    expected = image_to_tensor(_photo(40, 50)[5:35, 5:45])
    assert torch.equal(cropped[0]["gt"], expected)
    with pytest.raises(ds.DatasetError, match=r"x\.png: image 40×30 is smaller than the 32 px patch"):
        ds.PairedImageDataset(pairs, patch_size=32, center_crop_gt=True)[0]
    with pytest.raises(ds.DatasetError, match="no image pairs"):
        ds.PairedImageDataset([])
    with pytest.raises(ValueError, match="patch_size must be >= 1"):
        ds.PairedImageDataset(pairs, patch_size=0)


def test_cache_keeps_decoded_images(tmp_path: Path) -> None:
    lq_dir, gt_dir = _paired_folders(tmp_path, ["a.png"])
    dataset = ds.PairedImageDataset(ds.pair_folders(lq_dir, gt_dir), cache=True)
    first = dataset[0]
    (lq_dir / "a.png").unlink()
    (gt_dir / "a.png").unlink()
    assert torch.equal(dataset[0]["lq"], first["lq"])


def test_dihedral_gives_eight_distinct_views() -> None:
    block = np.arange(12).reshape(3, 4, 1)
    views = {ds.dihedral(block, k).tobytes() + bytes(ds.dihedral(block, k).shape) for k in range(8)}
    assert len(views) == 8
    np.testing.assert_array_equal(ds.dihedral(block, 0), block)
    with pytest.raises(ValueError, match="0..7"):
        ds.dihedral(block, 8)


def test_on_the_fly_noise_is_drawn_per_patch_and_unclipped(tmp_path: Path) -> None:
    images = _write(tmp_path, ["a.png", "b.png"], height=64, width=64)
    dataset = ds.DegradedImageDataset(images, "denoise", {"sigma": (5, 50)}, patch_size=32, augment=True, seed=1)
    sigmas = []
    for epoch in range(3):
        dataset.set_epoch(epoch)
        for index in range(2):
            sample = dataset[index]
            assert sample["lq"].shape == sample["gt"].shape == (3, 32, 32)
            sigmas.append(float((sample["lq"] - sample["gt"]).std()) * 255)
    assert max(sigmas) - min(sigmas) > 5
    black = tmp_path / "black"
    write_image(black / "zero.png", np.zeros((40, 40, 3), np.uint8))
    noisy = ds.DegradedImageDataset(ds.list_images(black), "denoise", "high")[0]["lq"]
    assert noisy.min() < 0


@pytest.mark.parametrize("task", ["derain", "dehaze", "deblur"])
def test_on_the_fly_tasks_are_deterministic_and_keep_patch_size(tmp_path: Path, task: str) -> None:
    images = _write(tmp_path, ["a.png"], height=90, width=100)
    first = ds.DegradedImageDataset(images, task, "high", patch_size=24, augment=True, seed=2, context=16)
    second = ds.DegradedImageDataset(images, task, "high", patch_size=24, augment=True, seed=2, context=16)
    a, b = first[0], second[0]
    assert a["lq"].shape == (3, 24, 24) and torch.equal(a["lq"], b["lq"]) and torch.equal(a["gt"], b["gt"])
    assert not torch.equal(a["lq"], a["gt"])
    whole = ds.DegradedImageDataset(images, task, "low")[0]
    assert whole["lq"].shape == (3, 90, 100)


def test_on_the_fly_rejects_bad_settings_at_construction(tmp_path: Path) -> None:
    images = _write(tmp_path, ["a.png"])
    with pytest.raises(ValueError, match="unknown task"):
        ds.DegradedImageDataset(images, "sharpen")
    with pytest.raises(ValueError, match="unknown level"):
        ds.DegradedImageDataset(images, "denoise", "brutal")
    with pytest.raises(ds.DatasetError, match="no clean images"):
        ds.DegradedImageDataset([], "denoise")


def test_config_factories(tmp_path: Path) -> None:
    lq_dir, gt_dir = _paired_folders(tmp_path / "pairs", ["a.png", "b.png"])
    assert set(ds.DATASETS) == {"paired", "paired_benchmark", "degraded", "degraded_benchmark", "mixed_degradations"}
    assert len(ds.DATASETS["paired"](lq_dir=lq_dir, gt_dir=gt_dir, patch_size=8, augment=True)) == 2
    with pytest.raises(ds.DatasetError, match="unknown pairing 'by_date'"):
        ds.DATASETS["paired"](lq_dir=lq_dir, gt_dir=gt_dir, pairing="by_date")
    _write(tmp_path / "Rain100H" / "input", ["1.png"])
    _write(tmp_path / "Rain100H" / "target", ["1.png"])
    assert len(ds.DATASETS["paired_benchmark"](benchmark="rain100h", root=tmp_path / "Rain100H")) == 1
    _write(tmp_path / "clean" / "x", ["1.png"])
    _write(tmp_path / "clean" / "y", ["2.png"])
    degraded = ds.DATASETS["degraded"](clean_dirs=[tmp_path / "clean"], task="denoise", level={"sigma": [15, 25]})
    assert len(degraded) == 2
    _write(tmp_path / "CBSD68", ["3096.png"])
    cbsd = ds.DATASETS["degraded_benchmark"](benchmark="cbsd68", root=tmp_path / "CBSD68", task="denoise")
    batch = next(iter(DataLoader(cbsd, batch_size=1)))
    assert batch["lq"].shape == (1, 3, 40, 48) and batch["name"] == ["3096"]


def test_degrade_folder_writes_a_paired_dataset(tmp_path: Path) -> None:
    _write(tmp_path / "clean", ["a.jpg", "b.png"])
    write_image(tmp_path / "clean" / "deep.png", RNG.integers(0, 65536, (40, 48, 3), dtype=np.uint16))
    manifest = ds.degrade_folder(tmp_path / "clean", tmp_path / "out", "derain", "low", seed=5)
    assert sorted(manifest["images"]) == ["a", "b", "deep"]
    saved = json.loads((tmp_path / "out" / "degradations.json").read_text())
    assert saved["task"] == "derain" and saved["images"]["a"]["source"] == "a.jpg"
    assert read_image(tmp_path / "out" / "lq" / "deep.png").dtype == np.uint16
    clean_b = read_image(tmp_path / "clean" / "b.png")
    np.testing.assert_array_equal(read_image(tmp_path / "out" / "gt" / "b.png"), clean_b)
    pairs = ds.pair_folders(tmp_path / "out" / "lq", tmp_path / "out" / "gt")
    assert len(pairs) == 3
    with pytest.raises(ds.DatasetError, match="is not empty"):
        ds.degrade_folder(tmp_path / "clean", tmp_path / "out", "derain", "low", seed=5)
    ds.degrade_folder(tmp_path / "clean", tmp_path / "again", "derain", "low", seed=5)
    for name in ("a", "b", "deep"):
        np.testing.assert_array_equal(
            read_image(tmp_path / "out" / "lq" / f"{name}.png"), read_image(tmp_path / "again" / "lq" / f"{name}.png")
        )
    _write(tmp_path / "clash", ["x.png", "x.jpg"])
    with pytest.raises(ds.DatasetError, match=r"would both be written as x\.png"):
        ds.degrade_folder(tmp_path / "clash", tmp_path / "out3", "denoise")


def test_augmentation_defaults_on_for_patches_off_for_whole_images(tmp_path: Path) -> None:
    pairs = ds.pair_folders(*_paired_folders(tmp_path, ["a.png"]))
    assert ds.PairedImageDataset(pairs, patch_size=8).augment
    assert not ds.PairedImageDataset(pairs, patch_size=8, augment=False).augment
    whole = ds.PairedImageDataset(pairs)
    assert not whole.augment
    assert torch.equal(whole[0]["gt"], image_to_tensor(read_image(pairs[0].gt)))
    flipped = ds.PairedImageDataset(pairs, augment=True)
    shapes = set()
    for epoch in range(12):
        flipped.set_epoch(epoch)
        shapes.add(tuple(flipped[0]["gt"].shape))
    assert shapes == {(3, 40, 48), (3, 48, 40)}  # rotated views of the whole image appear


def test_whole_image_dehaze_samples_work_at_sizes_whose_depth_preview_rounds_down(tmp_path):
    # 300×451 (scikit-image's chelsea): the 256-px depth preview is 170×256, smaller than the scaled window.
    write_image(tmp_path / "odd.png", np.random.default_rng(0).integers(0, 256, (300, 451, 3), dtype=np.uint8))
    sample = ds.degraded(clean_dirs=tmp_path, task="dehaze", level="medium")[0]
    assert sample["lq"].shape == (3, 300, 451)


def _crop_of(image: np.ndarray, crop: np.ndarray) -> bool:
    """Whether ``crop`` (h×w×3) is an exact window of ``image`` (pixels of random photos are nearly unique)."""
    height, width = crop.shape[:2]
    rows, columns = np.nonzero((image[: image.shape[0] - height + 1, : image.shape[1] - width + 1]
                                == crop[0, 0]).all(axis=-1))
    return any(np.array_equal(image[y : y + height, x : x + width], crop) for y, x in zip(rows, columns, strict=True))


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def test_mixed_degradation_views_come_with_their_clean_views(tmp_path: Path) -> None:
    """``gt``: the view of the (flipped) photo before degrading, aligned with ``lq``; ``lq`` itself for none.

    The photos are random pixels, so a view shifted by one pixel is nearly uncorrelated with the true one: an
    aligned ``gt`` correlates with its noisy or rainy ``lq`` far more than with ``lq`` shifted by a pixel.
    """
    paths = _write(tmp_path, ["a.png", "b.png"], height=70, width=84)
    dataset = ds.mixed_degradations(clean_dirs=tmp_path, classes=["none", "denoise", "derain"], patch_size=32,
                                    global_sides=(40, 64), native_fraction=0.5, jpeg_fraction=0.0,
                                    seed=1).repeated(16)
    photos = {path.stem: image_to_float(read_image(path)) for path in paths}
    kinds = set()
    for index in range(len(dataset)):
        sample = dataset[index]
        lq, gt = sample["lq"], sample["gt"]
        assert gt.shape == lq.shape == (3, 32, 32)
        none = dataset.classes[sample["label"]] == "none"
        kinds.add((none, sample["native"]))
        if none:
            assert torch.equal(gt, lq)
            continue
        shifted = max(_correlation(lq[:, 1:], gt[:, :-1]), _correlation(lq[:, :, 1:], gt[:, :, :-1]))
        assert _correlation(lq, gt) > 2 * shifted
        if sample["native"]:  # a crop of the photo at its own precision
            views = [ds.dihedral(photos[sample["name"]], transform) for transform in range(8)]
            assert any(_crop_of(view, gt.permute(1, 2, 0).numpy()) for view in views)
        else:  # a shrunk view, stored in 8 bits as lq is
            assert torch.equal(torch.round(gt * 255), gt * 255) and 0 <= gt.min() and gt.max() <= 1
    assert kinds == {(False, True), (False, False), (True, True), (True, False)}
