"""Architecture detection: every authors' reference checkpoint and every architecture of ours is recognised
from its keys and shapes, through any wrapper, and converts with no architecture named."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import irconstyle
from irconstyle.cli import main
from irconstyle.models import official
from irconstyle.models.checkpoint import CheckpointError
from irconstyle.models.detection import DetectionError, detect_architecture, guessed_options, unwrap_state_dict
from irconstyle.models.registry import MODELS

AUTHORS = ["ConStyleMaxim", "ConStyleNAFNet", "ConStyleRestormer", "Maxim", "NAFNet", "Restormer"]
AUTHORS2 = ["ConStyleKBNet", "ConStyleUformer", "ConStyleV2Prompter", "KBNet", "Uformer"]
# Options of the reference configurations that own no weights, so detection keeps their defaults. For the same
# reason (and img_size, see guessed_options) a Uformer file loaded bare computes with the defaults, not the
# reference's: its outputs are checked where it is built as named (test_uformer.py).
WEIGHTLESS = {"ConStyleUformer": ("qk_scale", "shifted_windows")}
# Tolerance for the authors' recorded outputs: float32 reassociation through a few hundred layers.
OUTPUT_TOLERANCE = 1e-4


@pytest.mark.parametrize("name", AUTHORS)
def test_every_authors_checkpoint_is_detected_with_its_constructor_arguments(name, reference_dir, manifest):
    _assert_detected_as_built(name, reference_dir, manifest)


@pytest.mark.parametrize("name", AUTHORS2)
def test_every_authors_checkpoint_of_the_newer_families_is_detected_with_its_constructor_arguments(
    name, reference2_dir, manifest2
):
    _assert_detected_as_built(name, reference2_dir, manifest2)


def _assert_detected_as_built(name, folder, manifest):
    entry = manifest[name]
    state = unwrap_state_dict(torch.load(folder / entry["checkpoint"], weights_only=True))
    config, ours = detect_architecture(state)
    expected = official.build_config(name, **entry["config"])
    unread = (*guessed_options(expected.architecture), *WEIGHTLESS.get(name, ()))
    assert config.canonical().without(*unread) == expected.canonical().without(*unread)
    model = config.build()
    model.load_state_dict(ours, strict=True)


@pytest.mark.parametrize("name", AUTHORS)
def test_load_and_convert_need_no_architecture_and_reproduce_the_authors_outputs(name, reference_dir, manifest,
                                                                                 tmp_path):
    _assert_loaded_and_converted_reproduce(name, reference_dir, manifest, tmp_path)


@pytest.mark.parametrize("name", [name for name in AUTHORS2 if not name.endswith("Uformer")])
def test_the_newer_families_load_and_convert_with_no_architecture_named(name, reference2_dir, manifest2, tmp_path):
    _assert_loaded_and_converted_reproduce(name, reference2_dir, manifest2, tmp_path)


def _assert_loaded_and_converted_reproduce(name, folder, manifest, tmp_path):
    entry = manifest[name]
    checkpoint = folder / entry["checkpoint"]
    output = tmp_path / f"{name}.safetensors"
    assert main(["convert", str(checkpoint), str(output)]) == 0
    reference = np.load(folder / entry["arrays"])
    for network in (irconstyle.load_model(checkpoint), irconstyle.load_model(output)):
        with torch.inference_mode():
            restored = network(torch.from_numpy(reference["input"]))
        assert (restored - torch.from_numpy(reference["output"])).abs().max() < OUTPUT_TOLERANCE


def test_the_training_layout_is_detected_as_the_inference_build(reference_dir):
    state = unwrap_state_dict(torch.load(reference_dir / "ConStyle_train_step.pth", weights_only=True))
    assert any(key.startswith("ConStyle.encoder_k.") for key in state)
    config, ours = detect_architecture(state)
    assert config.architecture == "constyle_nafnet" and "contrastive" not in config.options
    assert not any(key.startswith(("constyle.key_encoder.", "constyle.queue")) for key in ours)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_architecture_of_ours_is_detected_in_any_wrapper(name, tmp_path):
    descriptor = irconstyle.build(name, **MODELS[name].small)
    state = descriptor.model.state_dict()
    wrapped = {"epoch": 3, "model": {"state_dict": {f"module.{key}": value for key, value in state.items()}}}
    path = tmp_path / "trained.pth"
    torch.save(wrapped, path)
    guessed = guessed_options(name)  # Uformer's img_size: only a level whose window it clamps fixes it
    if guessed:  # a bare load says what it assumed
        with pytest.warns(UserWarning, match=f"{name}'s .*cannot be read from the weights"):
            loaded = irconstyle.load(path)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            loaded = irconstyle.load(path)
    assert loaded.build_config.canonical().without(*guessed) == descriptor.build_config.canonical().without(*guessed)
    for key, tensor in state.items():
        assert torch.equal(loaded.model.state_dict()[key], tensor), key


@pytest.mark.parametrize("wrapper", ["params_ema", "params", "state_dict", "model", "net_g"])
def test_unwrapping_prefers_the_ema_weights_and_strips_prefixes(wrapper):
    weights = {"_orig_mod.stem.weight": torch.ones(1), "_orig_mod.stem.bias": torch.zeros(1)}
    checkpoint = {wrapper: weights, "optimizer": {"state": {}}}
    if wrapper != "params_ema":
        checkpoint["params_ema" if wrapper == "params" else "other"] = weights if wrapper == "params" else 1
    assert sorted(unwrap_state_dict(checkpoint)) == ["stem.bias", "stem.weight"]


def test_what_is_not_a_known_architecture_is_one_clear_error(tmp_path):
    with pytest.raises(DetectionError, match="not one of the architectures irconstyle knows"):
        detect_architecture({"conv.weight": torch.zeros(8, 3, 3, 3)})
    path = tmp_path / "other.pth"
    torch.save({"state_dict": {"conv.weight": torch.zeros(8, 3, 3, 3)}}, path)
    with pytest.raises(CheckpointError, match=r"other\.pth: not one of the architectures irconstyle knows"):
        irconstyle.load(path)
    with pytest.raises(ValueError, match="expected a state dict"):
        unwrap_state_dict({"epoch": 3})


@pytest.mark.parametrize(("name", "img_size"), [("uformer", 16), ("constyle_uformer", 16)])
def test_a_uformer_whose_deepest_window_is_clamped_gives_its_exact_img_size(name, img_size):
    small = {**MODELS[name].small, "img_size": img_size, "modulator": False}
    descriptor = irconstyle.build(name, **small)
    config, _ = detect_architecture(descriptor.model.state_dict())
    assert config.canonical() == descriptor.build_config.canonical()
