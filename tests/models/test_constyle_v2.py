"""ConStyle v2's prompter: the authors' stage-1 checkpoint, its logits, latents and maps, and loading it into a
restorer's ConStyle strictly.

Tolerances: ours and the authors' compute the same fp32 sums in another order. The trunk's seven 3×3 convs sum
up to 1152 products each, so the relative rounding error of a map is about 2^-24 · √1152 · 7 ≈ 1.5e-5: at most
5e-5 on feature maps of magnitude ≤ 3.1 here, compared at 1e-4. The latents and logits (magnitude ≤ 0.9) come
from the pooled features through two or three small linear layers: 2e-6 for latents (their two batch items
differ by ~1e-5, see the fixtures' README), 1e-5 for logits.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import irconstyle
from irconstyle.models import official
from irconstyle.models.checkpoint import CheckpointError, load_constyle
from irconstyle.models.constyle import ConStyle, ConStyleV2Prompter
from irconstyle.models.detector import DegradationClassifier

FEATURE_TOLERANCE = 1e-4
LATENT_TOLERANCE = 2e-6
LOGIT_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def prompter_fixture(manifest2, reference2_dir):
    entry = manifest2["ConStyleV2Prompter"]
    arrays = {key: torch.from_numpy(value) for key, value in np.load(reference2_dir / entry["arrays"]).items()}
    return entry, reference2_dir / entry["checkpoint"], arrays


def _assert_encoded_like_authors(encoded, arrays):
    torch.testing.assert_close(encoded.latent_z, arrays["latent_z"], rtol=0, atol=LATENT_TOLERANCE)
    torch.testing.assert_close(encoded.latent_q, arrays["latent_q"], rtol=0, atol=LATENT_TOLERANCE)
    for index, feature in enumerate(encoded.features):
        torch.testing.assert_close(feature, arrays[f"feature{index}"], rtol=0, atol=FEATURE_TOLERANCE)


@pytest.mark.parametrize("kwargs", [{}, {"Train": True, "K": 32}], ids=["inference", "training-layout"])
def test_prompter_matches_authors_logits_latents_and_maps(kwargs, prompter_fixture):
    entry, checkpoint, arrays = prompter_fixture
    model = irconstyle.load_checkpoint(official.build("ConStyleV2Prompter", **kwargs), checkpoint).eval()
    with torch.no_grad():
        logits = model(arrays["input"])
        encoded, logits_again = model.classify(arrays["input"])
        _assert_encoded_like_authors(model.encode(arrays["input"]), arrays)
    torch.testing.assert_close(logits, arrays["output"], rtol=0, atol=LOGIT_TOLERANCE)
    torch.testing.assert_close(logits_again, logits, rtol=0, atol=0)
    _assert_encoded_like_authors(encoded, arrays)
    if kwargs:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)["params_ema"]
        assert torch.equal(model.constyle.queue, state["queue"]) and model.constyle.queue.shape == (128, 32)
        assert torch.equal(model.constyle.key_encoder.classifier[3].weight, state["encoder_k.classifier.3.weight"])


def test_outputs_come_from_params_ema_not_params(prompter_fixture, tmp_path):
    entry, checkpoint, arrays = prompter_fixture
    assert entry["weights_used"] == "params_ema"
    params_only = tmp_path / "params.pth"
    torch.save({"params": torch.load(checkpoint, map_location="cpu", weights_only=True)["params"]}, params_only)
    model = irconstyle.load_checkpoint(official.build("ConStyleV2Prompter"), params_only).eval()
    with torch.no_grad():
        assert (model(arrays["input"]) - arrays["output"]).abs().max() > 100 * LOGIT_TOLERANCE


@pytest.mark.parametrize(("layout", "contrastive"), [("train", True), ("inference", False)])
def test_full_size_layout_maps_one_to_one(layout, contrastive, state_dict_shapes2):
    reference = state_dict_shapes2["ConStyleV2Prompter"]
    architecture = official.ARCHITECTURES["ConStyleV2Prompter"]
    with torch.device("meta"):
        model = irconstyle.build_model(architecture.name, contrastive=contrastive)
    ours = {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}
    converted = {official.convert_key(key, architecture): tuple(shape) for key, shape in reference[layout].items()}
    assert len(converted) == len(reference[layout])
    assert sorted(set(converted) - set(ours)) == [] and sorted(set(ours) - set(converted)) == []
    assert {key: shape for key, shape in converted.items() if ours[key] != shape} == {}
    assert sum(p.numel() for p in model.parameters()) == reference[f"params_{layout}"]


@pytest.mark.parametrize("contrastive", [False, True])
def test_prompter_loads_into_a_restorers_constyle_as_stage_2_does(contrastive, prompter_fixture):
    """Stage 2 loads ``params_ema`` into a classifier-less ConStyle: same latents and maps as the prompter."""
    entry, checkpoint, arrays = prompter_fixture
    assert entry["stage2_load"]["missing_keys"] == [] and entry["stage2_load"]["latents_and_features_identical"]
    constyle = ConStyle(contrastive=contrastive, queue_size=8)
    queue = constyle.queue.clone() if contrastive else None
    load_constyle(constyle, checkpoint).eval()
    assert constyle.encoder.classifier is None
    with torch.no_grad():
        _assert_encoded_like_authors(constyle(arrays["input"]), arrays)
    if contrastive:  # MoCo's start: the momentum encoder copies the query encoder; the queue stays fresh
        for key, tensor in constyle.encoder.state_dict().items():
            assert torch.equal(constyle.key_encoder.state_dict()[key], tensor), key
        assert torch.equal(constyle.queue, queue)


def test_prompter_loads_into_a_constyle_restorer_and_restores(prompter_fixture):
    entry, checkpoint, arrays = prompter_fixture
    model = irconstyle.build_model("constyle_kbnet", width=8, encoder_blocks=(1, 1, 1), bottleneck_blocks=1,
                                   decoder_blocks=(1, 1, 1))
    load_constyle(model.constyle, checkpoint)
    model.eval()
    with torch.no_grad():
        _assert_encoded_like_authors(model.constyle(arrays["input"]), arrays)
        assert model(arrays["input"]).shape == arrays["input"].shape


def _v2_state(model: ConStyleV2Prompter) -> dict[str, torch.Tensor]:
    """Our prompter's state dict in ConStyle v2's key layout (``encoder_q.mlp1.0.weight`` …)."""
    renames = [("constyle.encoder.", "encoder_q."), ("constyle.key_encoder.", "encoder_k."), ("constyle.", ""),
               (".head_z.", ".mlp1."), (".head_q.", ".mlp2.")]
    state = {}
    for key, tensor in model.state_dict().items():
        for old, new in renames:
            key = key.replace(old, new)
        state[key] = tensor
    return state


def test_classifier_keys_are_loaded_or_left_out_explicitly_and_anything_else_is_an_error(tmp_path):
    source = ConStyleV2Prompter(contrastive=True, queue_size=8)
    state = _v2_state(source)
    path = tmp_path / "stage1.pth"
    torch.save({"params_ema": state}, path)

    with_head = load_constyle(ConStyle(classes=1000), path)
    assert torch.equal(with_head.encoder.classifier[0].weight, source.constyle.encoder.classifier[0].weight)
    with pytest.raises(CheckpointError, match=r"2 mis-shaped: classifier\.3\.bias"):
        load_constyle(ConStyle(classes=10), path)

    extra = tmp_path / "extra.pth"
    torch.save({"params_ema": {**state, "encoder_q.stage5.0.0.weight": torch.zeros(1)}}, extra)
    with pytest.raises(CheckpointError, match=r"extra\.pth: does not fit ConStyleEncoder: 1 unexpected: stage5"):
        load_constyle(ConStyle(), extra)
    missing = tmp_path / "missing.pth"
    torch.save({"params_ema": {k: v for k, v in state.items() if k != "encoder_q.mlp2.0.bias"}}, missing)
    with pytest.raises(CheckpointError, match=r"1 missing: head_q\.0\.bias"):
        load_constyle(ConStyle(), missing)
    with pytest.raises(CheckpointError, match="holds no ConStyle weights"):
        torch.save({"params": {"intro.weight": torch.zeros(1)}}, tmp_path / "body.pth")
        load_constyle(ConStyle(), tmp_path / "body.pth")
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_constyle(ConStyle(), tmp_path / "absent.pth")


def test_our_own_model_files_give_their_constyle(tmp_path):
    descriptor = irconstyle.build("constyle_v2_prompter", classes=7)
    prompter = descriptor.model
    irconstyle.save(descriptor, tmp_path / "prompter.safetensors")
    constyle = load_constyle(ConStyle(), tmp_path / "prompter.safetensors")
    for key, tensor in constyle.encoder.state_dict().items():
        assert torch.equal(prompter.constyle.encoder.state_dict()[key], tensor), key
    reloaded = irconstyle.load_model(tmp_path / "prompter.safetensors")
    assert isinstance(reloaded, ConStyleV2Prompter) and reloaded(torch.rand(2, 3, 32, 32)).shape == (2, 7)


def _differs(loaded: torch.nn.Module, expected: dict[str, torch.Tensor]) -> list[str]:
    return [key for key, tensor in loaded.state_dict().items() if not torch.equal(tensor, expected[key])]


def test_one_loader_starts_a_restorers_constyle_and_a_bare_encoder_from_the_same_files(tmp_path):
    """``model.constyle.pretrained`` (a restorer's ConStyle) and ``model.init_encoder_from`` (the degradation
    classifier's bare encoder) both read their file with :func:`load_constyle`."""
    restorer = irconstyle.build("constyle_nafnet", width=8, encoder_blocks=(1, 1, 1), bottleneck_blocks=1,
                                decoder_blocks=(1, 1, 1))
    ours = tmp_path / "restorer.safetensors"
    irconstyle.save(restorer, ours)
    source = ConStyleV2Prompter(contrastive=True, queue_size=8)
    authors = tmp_path / "stage1.pth"
    torch.save({"params_ema": _v2_state(source)}, authors)

    for path, encoder in ((ours, restorer.model.constyle.encoder), (authors, source.constyle.encoder)):
        expected = {key: tensor for key, tensor in encoder.state_dict().items() if not key.startswith("classifier.")}
        bare = DegradationClassifier().encoder
        assert _differs(bare, expected)  # a fresh encoder, so that a missed load shows
        assert load_constyle(bare, path) is bare and bare.classifier is None
        assert _differs(bare, expected) == []
        constyle = ConStyle(contrastive=True, queue_size=8)
        load_constyle(constyle, path)
        assert _differs(constyle.encoder, expected) == [] and _differs(constyle.key_encoder, expected) == []
    origin = irconstyle.build("nafnet", width=8, encoder_blocks=(1,), bottleneck_blocks=1, decoder_blocks=(1,))
    irconstyle.save(origin, tmp_path / "body.safetensors")
    with pytest.raises(CheckpointError, match=r"body\.safetensors: holds no ConStyle weights"):
        load_constyle(DegradationClassifier().encoder, tmp_path / "body.safetensors")


def test_official_build_maps_every_keyword():
    model = official.build("ConStyleV2Prompter", Train=True, dim=64, K=48, m=0.99, T=0.2)
    constyle = model.constyle
    assert constyle.contrastive and constyle.queue.shape == (64, 48)
    assert constyle.momentum == 0.99 and constyle.temperature == 0.2
    assert constyle.encoder.head_q[0].out_features == 64 and constyle.key_encoder.classifier[3].out_features == 1000
    assert ConStyleV2Prompter(classes=5)(torch.rand(2, 3, 16, 16)).shape == (2, 5)
    with pytest.raises(ValueError, match="classes must be positive"):
        ConStyleV2Prompter(classes=0)
    with pytest.raises(RuntimeError, match="without a classification head"):
        ConStyle().encoder.classify(torch.rand(2, 3, 16, 16))
