"""The degradation classifier: irconstyle.detect, `irconstyle detect`, and restore --task auto routing."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import irconstyle
from irconstyle.cli import main
from irconstyle.data import degradations as D
from irconstyle.data.io import image_to_float, read_image, write_image
from irconstyle.detect import (
    Detection,
    NoModelForTask,
    bundled_detector_path,
    choose_model,
    detect_files,
    load_detector,
    view_probabilities,
)
from irconstyle.models.checkpoint import read_metadata
from irconstyle.pretrained import install
from irconstyle.restoration import bundled_model_path, restore_files

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "tests" / "assets"
CLEAN = ASSETS / "maxim" / "chelsea_128x192.png"  # a crop of a held-out photo (chelsea is in data/photos/val)
CLASSES = ("none", "denoise", "derain", "dehaze", "deblur", "enhance")


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return read_image(CLEAN)


@pytest.fixture(scope="module")
def noisy(clean) -> np.ndarray:
    noisy = D.gaussian_noise(image_to_float(clean), 50.0, 3, clip=True)
    return np.rint(noisy * 255).astype(np.uint8)


@pytest.fixture(autouse=True)
def _no_installed_models(tmp_path, monkeypatch):
    monkeypatch.setenv("IRCONSTYLE_HOME", str(tmp_path / "home"))


def test_the_bundled_classifier_is_small_and_says_what_it_is():
    path = bundled_detector_path()
    assert path.stat().st_size < 6 * 2**20
    assert read_metadata(path)["task"] == "detect"
    assert load_detector().classes == CLASSES


def test_detection_shape_scores_and_determinism(clean):
    found = irconstyle.detect(clean)
    assert isinstance(found, Detection)
    with pytest.raises(dataclasses.FrozenInstanceError):
        found.task = "none"
    assert tuple(found.scores) == CLASSES
    assert sum(found.scores.values()) == pytest.approx(1.0, abs=1e-9)
    assert all(0.0 <= p <= 1.0 for p in found.scores.values())
    assert found.task == max(found.scores, key=found.scores.get)
    assert found.confidence == found.scores[found.task]
    assert (found.level is not None) == (found.task == "denoise")
    assert irconstyle.detect(clean) == found


def test_every_input_type_gives_the_same_answer(clean):
    expected = irconstyle.detect(clean)
    as_float = clean.astype(np.float32) / 255
    for image in (clean.astype(np.uint16) * 257, as_float, Image.fromarray(clean),
                  torch.from_numpy(as_float).permute(2, 0, 1), torch.from_numpy(as_float).permute(2, 0, 1)[None]):
        found = irconstyle.detect(image)
        assert found.task == expected.task
        for name in CLASSES:  # the views are rounded to 8 bits, so only float rounding of the inputs differs
            assert found.scores[name] == pytest.approx(expected.scores[name], abs=1e-5)


def test_small_images_are_padded_not_refused():
    tiny = np.full((20, 30, 3), 128, np.uint8)
    assert sum(irconstyle.detect(tiny).scores.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(("image", "error"), [(np.zeros((8, 8)), ValueError), (np.zeros((8, 8, 4)), ValueError),
                                              (np.zeros((8, 8, 3), np.int32), ValueError), ([[0, 0, 0]], TypeError),
                                              (torch.zeros(2, 3, 8, 8), ValueError)])
def test_bad_images_are_refused_clearly(image, error):
    with pytest.raises(error):
        irconstyle.detect(image)


def test_strong_noise_is_detected_with_its_level(noisy):
    found = irconstyle.detect(noisy)
    assert found.task == "denoise"
    assert 25 < found.level < 90  # σ 50, clipped at black and white


# --- the command ----------------------------------------------------------------------------------------------


def test_cli_prints_one_line_per_file_and_reports_bad_files(tmp_path, clean, noisy, capsys):
    write_image(tmp_path / "clean.png", clean)
    write_image(tmp_path / "noisy.png", noisy)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    status = main(["detect", str(tmp_path / "clean.png"), str(tmp_path / "broken.png"), str(tmp_path / "noisy.png")])
    out, err = capsys.readouterr()
    assert status == 1
    lines = out.splitlines()
    assert len(lines) == 2
    path, task, confidence, *level = lines[1].split("  ")
    assert path == str(tmp_path / "noisy.png") and task == "denoise" and 0 < float(confidence) <= 1
    assert level and level[0].startswith("σ=")
    assert lines[0].split("  ")[0] == str(tmp_path / "clean.png")
    assert err.strip().splitlines() == [err.strip()] and "broken.png" in err and "Traceback" not in err


def test_cli_json(tmp_path, clean, noisy, capsys):
    write_image(tmp_path / "a.png", clean)
    write_image(tmp_path / "b.png", noisy)
    assert main(["detect", str(tmp_path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [Path(entry["file"]).name for entry in listed] == ["a.png", "b.png"]
    for entry in listed:
        assert set(entry) <= {"file", "task", "scores", "level"} and tuple(entry["scores"]) == CLASSES
        assert sum(entry["scores"].values()) == pytest.approx(1.0)
        assert ("level" in entry) == (entry["task"] == "denoise")
    assert listed[1]["task"] == "denoise"


def test_cli_with_no_images(tmp_path, capsys):
    assert main(["detect", str(tmp_path / "*.png")]) == 1
    assert "no input images" in capsys.readouterr().err


# --- routing ----------------------------------------------------------------------------------------------------


def _install_copy(task: str, name: str, folder: Path) -> None:
    source = folder / f"{name}.safetensors"
    shutil.copyfile(bundled_model_path(task), source)
    entry = install(source)
    assert entry.task == task


def test_choose_model_prefers_installed_models_and_outdoor_dehazing(tmp_path):
    assert choose_model("denoise").origin == "bundled" and choose_model("denoise").model == "denoise"
    with pytest.raises(NoModelForTask, match="enhance"):
        choose_model("enhance")
    _install_copy("dehaze", "maxim-dehaze-indoor", tmp_path)
    assert choose_model("dehaze").model == "maxim-dehaze-indoor"
    _install_copy("dehaze", "maxim-dehaze-outdoor", tmp_path)
    assert choose_model("dehaze").model == "maxim-dehaze-outdoor"
    _install_copy("denoise", "my-denoiser", tmp_path)
    assert choose_model("denoise") == choose_model("denoise").__class__("denoise", "my-denoiser", "installed")


def test_restore_auto_from_python(clean, noisy, monkeypatch):
    import irconstyle.restoration as restoration

    monkeypatch.setattr(restoration, "detect", lambda image, device: Detection("none", 0.9, {}, None))
    for image in (clean, Image.fromarray(clean), torch.from_numpy(clean.copy()).float().div(255).permute(2, 0, 1)):
        unchanged = irconstyle.restore(image, task="auto")
        assert unchanged is not image and type(unchanged) is type(image)
        np.testing.assert_array_equal(np.asarray(unchanged), np.asarray(image))
    monkeypatch.undo()
    restored = irconstyle.restore(noisy, task="auto", tile=None)
    np.testing.assert_array_equal(restored, irconstyle.restore(noisy, task="denoise", tile=None))
    with pytest.raises(ValueError, match="not both"):
        irconstyle.restore(noisy, task="auto", model="denoise")


def _judge_clean_photos_clean(monkeypatch, clean_file: Path) -> None:
    """Route as if the classifier called ``clean_file``'s pixels clean (it is not reliable enough to ask it: see
    docs/detect.md), leaving every other image to the real classifier."""
    import irconstyle.restoration as restoration

    clean_pixels = read_image(clean_file)
    real_detect = restoration.detect

    def detect(image, device):
        if isinstance(image, np.ndarray) and np.array_equal(image, clean_pixels):
            return Detection("none", 0.9, {name: 0.9 if name == "none" else 0.02 for name in CLASSES}, None)
        return real_detect(image, device=device)

    monkeypatch.setattr(restoration, "detect", detect)


def test_restore_files_auto_copies_clean_photos_and_routes_noisy_ones(tmp_path, noisy, monkeypatch):
    inputs = tmp_path / "in"
    clean_file = ASSETS / "photos" / "val" / "chelsea.png"
    _judge_clean_photos_clean(monkeypatch, clean_file)
    inputs.mkdir()
    shutil.copyfile(clean_file, inputs / "clean.png")
    write_image(inputs / "noisy.png", noisy)
    (inputs / "broken.png").write_bytes(b"")
    results = restore_files([inputs], tmp_path / "out", task="auto", tile=None)
    by_name = {result.source.name: result for result in results}
    assert by_name["broken.png"].error and "broken.png" in by_name["broken.png"].error
    copied = by_name["clean.png"]
    assert copied.detection.task == "none" and copied.model is None
    assert (tmp_path / "out" / "clean.png").read_bytes() == (inputs / "clean.png").read_bytes()
    routed = by_name["noisy.png"]
    assert routed.detection.task == "denoise" and (routed.model, routed.model_origin) == ("denoise", "bundled")
    np.testing.assert_array_equal(read_image(routed.output), irconstyle.restore(noisy, task="denoise", tile=None))


def test_restore_auto_prefers_an_installed_model(tmp_path, noisy):
    _install_copy("denoise", "my-denoiser", tmp_path)
    write_image(tmp_path / "noisy.png", noisy)
    (result,) = restore_files([tmp_path / "noisy.png"], tmp_path / "out", task="auto", tile=None)
    assert (result.model, result.model_origin) == ("my-denoiser", "installed")


def test_cli_restore_auto_says_what_it_decided(tmp_path, noisy, capsys, monkeypatch):
    _judge_clean_photos_clean(monkeypatch, ASSETS / "photos" / "val" / "chelsea.png")
    shutil.copyfile(ASSETS / "photos" / "val" / "chelsea.png", tmp_path / "clean.png")
    write_image(tmp_path / "noisy.png", noisy)
    status = main(["restore", "--task", "auto", str(tmp_path / "clean.png"), str(tmp_path / "noisy.png"),
                   "-o", str(tmp_path / "out"), "--tile", "0", "-q"])
    out, err = capsys.readouterr()
    assert status == 0, err
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines[0].startswith(f"{tmp_path / 'clean.png'}: detected none") and "copied unchanged" in lines[0]
    assert lines[1].startswith(f"{tmp_path / 'noisy.png'}: detected denoise")
    assert "bundled model denoise" in lines[1]
    assert main(["restore", "--task", "auto", "--model", "denoise", str(tmp_path / "noisy.png")]) == 2
    assert "drop --model" in capsys.readouterr().err


def test_auto_leaves_photos_it_is_not_sure_about_unchanged(tmp_path, noisy, monkeypatch, capsys):
    import irconstyle.restoration as restoration

    unsure = Detection("denoise", 0.45, {"none": 0.3, "denoise": 0.45, "derain": 0.25}, 20.0)
    monkeypatch.setattr(restoration, "detect", lambda image, device: unsure)
    np.testing.assert_array_equal(irconstyle.restore(noisy, task="auto"), noisy)
    restored = irconstyle.restore(noisy, task="auto", tile=None, min_confidence=0.4)
    np.testing.assert_array_equal(restored, irconstyle.restore(noisy, task="denoise", tile=None))
    write_image(tmp_path / "noisy.png", noisy)
    (result,) = restore_files([tmp_path / "noisy.png"], tmp_path / "out", task="auto")
    assert result.model is None and result.detection is unsure
    assert (tmp_path / "out" / "noisy.png").read_bytes() == (tmp_path / "noisy.png").read_bytes()
    assert main(["restore", "--task", "auto", str(tmp_path / "noisy.png"), "-o", str(tmp_path / "cli"), "-q"]) == 0
    assert "not sure enough (below the minimum confidence 0.5), copied unchanged" in capsys.readouterr().out
    assert main(["restore", "--task", "auto", "--min-confidence", "0.45", "--tile", "0", str(tmp_path / "noisy.png"),
                 "-o", str(tmp_path / "cli2"), "-q"]) == 0
    assert "restored with the bundled model denoise" in capsys.readouterr().out
    with pytest.raises(ValueError, match="min_confidence must be between 0 and 1, got 1.5"):
        restore_files([tmp_path / "noisy.png"], tmp_path / "out3", task="auto", min_confidence=1.5)
    assert not (tmp_path / "out3").exists()
    with pytest.raises(SystemExit):
        main(["restore", "--task", "auto", "--min-confidence", "2", str(tmp_path / "noisy.png")])
    assert "expected a probability from 0 to 1, got '2'" in capsys.readouterr().err
    assert main(["restore", "--task", "denoise", "--min-confidence", "0.3", str(tmp_path / "noisy.png")]) == 2
    assert "--min-confidence applies to --task auto only" in capsys.readouterr().err


# --- accuracy ---------------------------------------------------------------------------------------------------

# Our generators at every level, on crops of held-out photos (never trained on).
def test_class_bias_shifts_the_decision_as_a_log_prior(clean, tmp_path):
    torch.manual_seed(0)
    plain = irconstyle.build("degradation_classifier", latent_dim=16)
    biased = irconstyle.build("degradation_classifier", latent_dim=16, class_bias={"none": 1.5, "deblur": -0.5})
    biased.model.load_state_dict(plain.model.state_dict())
    probabilities, _ = view_probabilities(clean, load_detector(plain.model))
    mean = probabilities.mean(dim=0).double()
    expected = mean * torch.tensor([np.exp(1.5), 1, 1, 1, np.exp(-0.5), 1], dtype=torch.float64)
    expected /= expected.sum()
    found = irconstyle.detect(clean, model=biased.model)
    # float32 view probabilities, then the same sums in float64: a few float32 ulps apart at most
    np.testing.assert_allclose([found.scores[c] for c in CLASSES], expected.numpy(), rtol=0, atol=1e-6)
    assert found.task == CLASSES[int(expected.argmax())]
    without = irconstyle.detect(clean, model=plain.model)
    np.testing.assert_allclose([without.scores[c] for c in CLASSES], (mean / mean.sum()).numpy(), atol=1e-6)
    # a large enough prior wins whatever the views say, and the file keeps it
    irconstyle.save(irconstyle.build("degradation_classifier", latent_dim=16, class_bias={"enhance": 40.0}),
                    tmp_path / "biased.safetensors")
    assert irconstyle.detect(clean, model=tmp_path / "biased.safetensors").task == "enhance"


def test_class_bias_must_name_known_classes():
    with pytest.raises(ValueError, match="class_bias names classes the classifier does not have: blur"):
        irconstyle.build("degradation_classifier", latent_dim=16, class_bias={"blur": 1.0})


HELD_OUT = [ASSETS / "maxim" / "chelsea_128x192.png", ASSETS / "photos" / "val" / "chelsea.png"]
CASES = [("none", "none"), ("denoise", {"sigma": 25.0}), ("denoise", "high"), ("derain", "medium"),
         ("derain", "high"), ("dehaze", "medium"), ("dehaze", "high"), ("deblur", "medium"), ("deblur", "high"),
         ("enhance", "medium"), ("enhance", "high")]
# Every one of the 22 is right with the bundled classifier, and in each case the winning probability leads the
# runner-up by more than 0.1, orders of magnitude above the float differences between CPUs: all must stay right.
MIN_CORRECT_OURS = 22


def test_accuracy_floor_on_held_out_crops():
    correct, total = 0, 0
    for path in HELD_OUT:
        clean = image_to_float(read_image(path))
        for index, (task, level) in enumerate(CASES):
            image = clean if task == "none" else D.degrade(clean, task, level, index).image
            found = irconstyle.detect(np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8))
            correct += found.task == task
            total += 1
    assert correct >= MIN_CORRECT_OURS, f"{correct} of {total}"


# --- training ---------------------------------------------------------------------------------------------------


def test_the_smoke_config_trains_a_classifier_that_detects(tmp_path, clean, monkeypatch):
    from irconstyle.training import load_config, train

    monkeypatch.chdir(ROOT)
    result = train(load_config(ROOT / "configs" / "detect-smoke.yaml"), output_dir=tmp_path / "run", progress=False)
    assert result.status == "completed" and result.final_weights.is_file()
    log = (tmp_path / "run" / "train.log").read_text()
    assert "class=" in log and "level=" in log and "accuracy=" in log
    found = irconstyle.detect(clean, model=result.final_weights)
    assert sum(found.scores.values()) == pytest.approx(1.0)
    files = detect_files([CLEAN], model=result.final_weights)
    assert files[0].detection == found


def _smoke_config(**changes) -> dict:
    import yaml

    from irconstyle.training.schema import set_values

    return set_values(yaml.safe_load((ROOT / "configs" / "detect-smoke.yaml").read_text()), changes)


@pytest.mark.parametrize(("changes", "message"), [
    ({"model.name": "constyle_nafnet"}, "model.name: the detect objective trains degradation_classifier"),
    ({"data.train.dataset": "degraded", "data.train.options": {"clean_dirs": "x", "task": "denoise"}},
     "data.train.dataset: the detect objective needs labelled views"),
    ({"data.val": {"dataset": "mixed_degradations", "options": {"clean_dirs": "x"}}}, "data.val: a detect run"),
    ({"train.objective": "restore"}, "is trained with train.objective: detect"),
    ({"train.losses": {"label_smoothing": 1.0}}, "label_smoothing: must be in"),
    ({"model.init_encoder_from": "x.safetensors", "model.name": "nafnet", "train.objective": "restore",
      "data.train.dataset": "degraded", "data.train.options": {"clean_dirs": "x", "task": "denoise"}},
     "init_encoder_from: only for"),
])
def test_detect_config_errors(changes, message):
    from irconstyle.training import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match=message):
        config_from_dict(_smoke_config(**changes))


class _StopAfterSetup(Exception):
    pass


def test_init_encoder_from_starts_a_new_classifier_from_a_restorers_encoder(tmp_path, monkeypatch):
    from irconstyle.training import ConfigError, Trainer, config_from_dict

    monkeypatch.chdir(ROOT)
    restorer = irconstyle.build("constyle_nafnet", width=8, encoder_blocks=(1, 1, 1), bottleneck_blocks=1,
                                decoder_blocks=(1, 1, 1))
    irconstyle.save(restorer, tmp_path / "restorer.safetensors")
    config = config_from_dict(_smoke_config(**{"model.init_encoder_from": str(tmp_path / "restorer.safetensors")}))

    def stop(self):
        raise _StopAfterSetup  # the weights are in place before the optimiser is built: no need to train

    monkeypatch.setattr(Trainer, "_build_optimizer", stop)
    trainer = Trainer(config, output_dir=tmp_path / "run", progress=False)
    with pytest.raises(_StopAfterSetup):
        trainer.run()
    expected = restorer.model.constyle.encoder.state_dict()
    assert [k for k, v in trainer.model.encoder.state_dict().items() if not torch.equal(v, expected[k])] == []

    absent = config_from_dict(_smoke_config(**{"model.init_encoder_from": str(tmp_path / "absent.safetensors")}))
    with pytest.raises(ConfigError, match=r"^model\.init_encoder_from: .*absent\.safetensors: no such checkpoint file"):
        Trainer(absent, output_dir=tmp_path / "run2", progress=False).run()


def test_mixed_degradation_views_are_labelled_seeded_and_cover_every_class():
    from irconstyle.data.datasets import mixed_degradations

    dataset = mixed_degradations(clean_dirs=ASSETS / "photos" / "train", patch_size=64, global_sides=(96, 160),
                                 seed=3).repeated(8)
    samples = [dataset[i] for i in range(len(dataset))]
    assert {sample["label"] for sample in samples} == set(range(len(CLASSES)))
    assert {sample["native"] for sample in samples} == {True, False}
    for sample in samples:
        assert sample["lq"].shape == (3, 64, 64) and 0 <= sample["lq"].min() and sample["lq"].max() <= 1
        assert np.isfinite(sample["level"]) == (sample["native"] and CLASSES[sample["label"]] == "denoise")
        np.testing.assert_array_equal(sample["lq"] * 255, torch.round(sample["lq"] * 255))  # stored in 8 bits
    again = dataset[5]
    assert again["label"] == samples[5]["label"] and torch.equal(again["lq"], samples[5]["lq"])
    dataset.set_epoch(1)
    assert any(not torch.equal(dataset[i]["lq"], samples[i]["lq"]) for i in range(4))


def test_low_light_is_dark_noisy_and_seeded():
    photo = image_to_float(read_image(CLEAN))
    dark = D.low_light(photo, 0, exposure=0.05, peak=30.0, read_sigma=2.0)
    assert dark.mean() < 0.6 * photo.mean()
    np.testing.assert_array_equal(dark, D.low_light(photo, 0, exposure=0.05, peak=30.0, read_sigma=2.0))
    with pytest.raises(ValueError, match="exposure"):
        D.low_light(photo, 0, exposure=0.0, peak=30.0, read_sigma=2.0)


def test_the_calibration_fit_recovers_a_known_class_prior():
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    from calibrate_detect import fit_bias

    # a calibrated model's log-probabilities, with a known prior subtracted: the fit must add it back
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(4).repeat(2000)
    logits = 2.0 * torch.nn.functional.one_hot(labels, 4).double() + torch.randn(8000, 4, generator=generator,
                                                                                  dtype=torch.float64)
    prior = torch.tensor([1.0, -0.5, -0.25, -0.25], dtype=torch.float64)
    skewed = torch.log_softmax(logits - prior, dim=1)
    bias = fit_bias(skewed, labels, 4)
    # every class is built alike from ``logits``, so by symmetry their best offset is zero and the skewed ones' is
    # the prior (centred); 2000 samples a class put the estimate within a few hundredths of it
    assert bias.sum().abs() < 1e-9
    torch.testing.assert_close(bias, prior - prior.mean(), atol=0.05, rtol=0)


def test_auto_copies_a_photo_whose_task_no_model_restores_and_counts_it(tmp_path, noisy, monkeypatch, capsys):
    import irconstyle.restoration as restoration

    dark = Detection("enhance", 0.8, {name: 0.8 if name == "enhance" else 0.2 / (len(CLASSES) - 1) for name in CLASSES},
                     None)
    monkeypatch.setattr(restoration, "detect", lambda image, device: dark)
    write_image(tmp_path / "dark.png", noisy)
    (result,) = restore_files([tmp_path / "dark.png"], tmp_path / "out", task="auto")
    assert result.error is None and result.model is None
    assert "npm pack @upscalerjs/maxim-enhancement" in result.copied_because
    assert (tmp_path / "out" / "dark.png").read_bytes() == (tmp_path / "dark.png").read_bytes()
    (tmp_path / "broken.png").write_bytes(b"")
    assert main(["restore", "--task", "auto", str(tmp_path / "dark.png"), str(tmp_path / "broken.png"),
                 "-o", str(tmp_path / "cli")]) == 1
    out = capsys.readouterr().out
    assert "detected enhance 0.80: no model restores 'enhance'" in out and "copied unchanged" in out
    assert f"restored 0 of 2 image(s) into {tmp_path / 'cli'} (1 copied unchanged, 1 failed)" in out
