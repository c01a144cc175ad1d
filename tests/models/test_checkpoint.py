"""Saving and loading weights: round trips, strict errors, unreadable and unsafe files."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import irconstyle
from irconstyle import CheckpointError
from irconstyle.models.checkpoint import load_checkpoint_into_deeper
from irconstyle.models.nafnet import NAFNet

SMALL = {"width": 8, "encoder_blocks": [1, 1, 1], "bottleneck_blocks": 1, "decoder_blocks": [1, 1, 1]}


def _small_model() -> irconstyle.ModelDescriptor:
    descriptor = irconstyle.build("constyle_nafnet", **SMALL)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in descriptor.model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return descriptor.eval()


def test_save_then_load_model_round_trip(tmp_path):
    model = _small_model()
    path = tmp_path / "weights" / "small.safetensors"
    irconstyle.save(model, path, metadata={"iteration": 1200, "task": "denoise"})

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    assert json.loads(metadata["architecture"]) == {"name": "constyle_nafnet", "kwargs": SMALL}
    assert json.loads(metadata["iteration"]) == 1200 and json.loads(metadata["task"]) == "denoise"
    assert [p.name for p in path.parent.iterdir()] == ["small.safetensors"]  # no temporary file left

    loaded = irconstyle.load_model(path)
    assert type(loaded) is type(model.model) and not loaded.training
    image = torch.rand(1, 3, 24, 40)
    with torch.no_grad():
        torch.testing.assert_close(loaded(image), model(image), rtol=0, atol=0)
    described = irconstyle.load(path)
    assert described.task == "denoise" and described.metadata == {"iteration": 1200}
    assert described.build_config == model.build_config and described.architecture == "constyle_nafnet"


def test_native_tile_travels_with_the_weights_in_the_descriptor_not_on_the_module(tmp_path):
    model = _small_model().with_facts(native_tile=64)
    path = tmp_path / "tiled.safetensors"
    irconstyle.save(model, path)
    assert irconstyle.load(path).native_tile == 64
    assert not hasattr(irconstyle.load_model(path), "native_tile")
    irconstyle.save(_small_model(), path)
    assert irconstyle.load(path).native_tile is None

    state = {k: v.contiguous() for k, v in model.model.state_dict().items()}
    architecture = json.dumps({"name": "constyle_nafnet", "kwargs": SMALL})
    save_file(state, path, metadata={"format": "irconstyle", "architecture": architecture, "native_tile": "60"})
    with pytest.raises(CheckpointError, match=r"tiled\.safetensors: native_tile must be a positive multiple of 8"):
        irconstyle.load_model(path)


def test_load_checkpoint_reads_our_safetensors_into_a_model(tmp_path):
    model = _small_model()
    path = tmp_path / "small.safetensors"
    irconstyle.save(model, path)
    target = irconstyle.build_model("constyle_nafnet", **SMALL)
    irconstyle.load_checkpoint(target, path)
    for key, tensor in model.model.state_dict().items():
        assert torch.equal(target.state_dict()[key], tensor), key


def test_a_deeper_model_grown_from_weights_computes_what_they_computed(tmp_path):
    """New NAFBlocks start as the identity, so the grown model's output equals the file's model's exactly."""
    model = _small_model()
    path = tmp_path / "small.safetensors"
    irconstyle.save(model, path)
    deeper_options = {**SMALL, "encoder_blocks": [1, 2, 1], "bottleneck_blocks": 3}
    deeper = irconstyle.build_model("constyle_nafnet", **deeper_options).eval()

    new_blocks = load_checkpoint_into_deeper(deeper, path)

    assert new_blocks == ["body.encoder2.1", "body.bottleneck.1", "body.bottleneck.2"]
    image = torch.rand(1, 3, 40, 24, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(deeper(image), model(image))
    with pytest.raises(CheckpointError, match=r"does not fit ConStyleNAFNet: 54 missing: body\.bottleneck\.1\."):
        irconstyle.load_checkpoint(irconstyle.build_model("constyle_nafnet", **deeper_options), path)


def test_growing_refuses_what_is_not_a_whole_identity_block(tmp_path):
    """Only whole identity-at-initialisation blocks may be absent: a wider model or a Restormer is refused."""
    path = tmp_path / "small.safetensors"
    irconstyle.save(_small_model(), path)
    with pytest.raises(CheckpointError, match="mis-shaped"):
        load_checkpoint_into_deeper(irconstyle.build_model("constyle_nafnet", **{**SMALL, "width": 16}), path)

    restormer_options = {"width": 8, "encoder_blocks": [1, 1, 1], "bottleneck_blocks": 1, "decoder_blocks": [1, 1, 1],
                         "refinement_blocks": 1, "heads": [1, 1, 1, 1]}
    restormer_path = tmp_path / "restormer.safetensors"
    irconstyle.save(irconstyle.build("constyle_restormer", **restormer_options), restormer_path)
    deeper_restormer = irconstyle.build_model("constyle_restormer", **{**restormer_options, "bottleneck_blocks": 2})
    with pytest.raises(CheckpointError, match=r"missing: body\.bottleneck\.1\."):
        load_checkpoint_into_deeper(deeper_restormer, restormer_path)


def test_saving_a_model_without_its_build_config_is_refused(tmp_path):
    network = NAFNet(width=8, encoder_blocks=[1], bottleneck_blocks=1, decoder_blocks=[1])
    with pytest.raises(CheckpointError, match=r"irconstyle\.build\(name"):
        irconstyle.save(network, tmp_path / "x.safetensors")
    with pytest.raises(CheckpointError, match=r"arguments that rebuild it are unknown"):
        irconstyle.save(irconstyle.describe(network), tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_strict_load_lists_every_problem_in_one_message(tmp_path):
    state = dict(_small_model().model.state_dict())
    del state["body.stem.weight"]
    state["body.extra.weight"] = torch.zeros(3)
    state["body.output.weight"] = torch.zeros(3, 16, 5, 5)
    path = tmp_path / "broken.safetensors"
    save_file({key: tensor.contiguous() for key, tensor in state.items()}, str(path))

    with pytest.raises(CheckpointError) as raised:
        irconstyle.load_checkpoint(irconstyle.build_model("constyle_nafnet", **SMALL), path)
    message = str(raised.value)
    assert "\n" not in message
    assert "1 missing: body.stem.weight" in message
    assert "1 unexpected: body.extra.weight" in message
    assert "1 mis-shaped: body.output.weight (file (3, 16, 5, 5), model (3, 16, 3, 3))" in message


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_non_checkpoint_file_gives_one_line_error(tmp_path, suffix):
    path = tmp_path / f"notes{suffix}"
    path.write_text("these are not weights\n" * 20)
    with pytest.raises(CheckpointError) as raised:
        irconstyle.load_checkpoint(irconstyle.build_model("constyle_nafnet", **SMALL), path)
    assert "\n" not in str(raised.value) and str(path) in str(raised.value)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_file_gives_one_line_error(tmp_path, suffix):
    model = _small_model()
    whole = tmp_path / f"whole{suffix}"
    if suffix == ".pth":
        torch.save({"params": model.model.state_dict()}, whole)
    else:
        irconstyle.save(model, whole)
    truncated = tmp_path / f"truncated{suffix}"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(CheckpointError) as raised:
        irconstyle.load_checkpoint(irconstyle.build_model("constyle_nafnet", **SMALL), truncated)
    assert "\n" not in str(raised.value)


def test_missing_file_and_foreign_safetensors(tmp_path):
    model = irconstyle.build_model("constyle_nafnet", **SMALL)
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        irconstyle.load_checkpoint(model, tmp_path / "absent.pth")
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="no irconstyle architecture metadata"):
        irconstyle.load_model(foreign)


class _Payload:
    """Unpickling this would create ``marker``: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_with_code_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "malicious.pth"
    torch.save({"params": {"weight": torch.zeros(1)}, "payload": _Payload(marker)}, path)
    with pytest.raises(CheckpointError) as raised:
        irconstyle.load_checkpoint(irconstyle.build_model("constyle_nafnet", **SMALL), path)
    assert "weights-only" in str(raised.value) and "\n" not in str(raised.value)
    assert not marker.exists()
