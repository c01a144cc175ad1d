"""NAFNet family: parity with the authors' outputs, checkpoint layouts, any input size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import irconstyle
from irconstyle.models import official
from irconstyle.models.constyle import pad_to_multiple
from irconstyle.models.nafnet import ConStyleNAFNet, NAFBlock, NAFNet

SMALL_CONSTYLE = {"width": 8, "encoder_blocks": (1, 1, 2), "bottleneck_blocks": 1, "decoder_blocks": (1, 2, 1)}
SMALL_NAFNET = {"width": 8, "encoder_blocks": (1, 1, 1, 1), "bottleneck_blocks": 1, "decoder_blocks": (1, 1, 1, 1)}


def _randomized(model: torch.nn.Module) -> torch.nn.Module:
    """Random weights everywhere (a fresh NAFBlock is the identity), then eval mode."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return model.eval()


def _load_reference(name: str, manifest: dict, reference_dir):
    entry = manifest[name]
    model = official.build(name, **entry["config"])
    irconstyle.load_checkpoint(model, reference_dir / entry["checkpoint"])
    arrays = {key: torch.from_numpy(value) for key, value in np.load(reference_dir / entry["arrays"]).items()}
    return model.eval(), arrays


@pytest.mark.parametrize("name", ["ConStyleNAFNet", "NAFNet"])
def test_small_model_matches_authors_output(name, manifest, reference_dir):
    model, arrays = _load_reference(name, manifest, reference_dir)
    with torch.no_grad():
        restored = model(arrays["input"])
    torch.testing.assert_close(restored, arrays["output"], rtol=0, atol=1e-4)


def test_constyle_encoder_outputs_match_authors(manifest, reference_dir):
    model, arrays = _load_reference("ConStyleNAFNet", manifest, reference_dir)
    with torch.no_grad():
        encoded = model.constyle(arrays["input"])
    torch.testing.assert_close(encoded.latent_z, arrays["latent_z"], rtol=0, atol=1e-4)
    torch.testing.assert_close(encoded.latent_q, arrays["latent_q"], rtol=0, atol=1e-4)
    for index, feature in enumerate(encoded.features):
        torch.testing.assert_close(feature, arrays[f"feature{index}"], rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    ("official_name", "layout", "contrastive"),
    [("ConStyleNAFNet", "train", True), ("ConStyleNAFNet", "inference", False), ("NAFNet", "train", None)],
)
def test_full_size_layout_maps_one_to_one(official_name, layout, contrastive, state_dict_shapes):
    """Every authors' key maps onto exactly one of ours with the same shape, and nothing is left over."""
    reference = state_dict_shapes[official_name]
    architecture = official.ARCHITECTURES[official_name]
    kwargs = {} if contrastive is None else {"contrastive": contrastive}
    with torch.device("meta"):
        model = irconstyle.build_model(architecture.name, **kwargs)
    ours = {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}
    converted = {official.convert_key(key, architecture): tuple(shape) for key, shape in reference[layout].items()}

    assert len(converted) == len(reference[layout]), "two authors' keys map onto the same key of ours"
    assert sorted(set(converted) - set(ours)) == []
    assert sorted(set(ours) - set(converted)) == []
    assert {key: shape for key, shape in converted.items() if ours[key] != shape} == {}
    assert sum(p.numel() for p in model.parameters()) == reference[f"params_{layout}"]


@pytest.mark.parametrize("size", [(67, 101), (8, 8), (1, 3)])
def test_constyle_nafnet_any_size_equals_reflect_padded_and_cropped(size):
    model = _randomized(ConStyleNAFNet(**SMALL_CONSTYLE))
    image = torch.rand(2, 3, *size)
    with torch.no_grad():
        restored = model(image)
        padded, _ = pad_to_multiple(image, 8)
        expected = model(padded)[..., : size[0], : size[1]]
    assert restored.shape == image.shape
    torch.testing.assert_close(restored, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("size", [(67, 101), (16, 16), (5, 7)])
def test_nafnet_any_size_equals_zero_padded_and_cropped(size):
    model = _randomized(NAFNet(**SMALL_NAFNET))
    image = torch.rand(2, 3, *size)
    with torch.no_grad():
        restored = model(image)
        padded = F.pad(image, (0, -size[1] % 16, 0, -size[0] % 16))
        expected = model(padded)[..., : size[0], : size[1]]
    assert restored.shape == image.shape
    assert restored.is_contiguous()
    torch.testing.assert_close(restored, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("wrap", ["params_ema", "module_prefix"])
def test_authors_checkpoint_variants_load(wrap, manifest, reference_dir, tmp_path):
    """``params_ema`` is preferred over ``params``; a DataParallel ``module.`` prefix is stripped."""
    name = "ConStyleNAFNet"
    entry = manifest[name]
    state = torch.load(reference_dir / entry["checkpoint"], map_location="cpu", weights_only=True)["params"]
    if wrap == "params_ema":
        decoy = {key: torch.zeros_like(tensor) for key, tensor in state.items()}
        checkpoint = {"params": decoy, "params_ema": state}
    else:
        checkpoint = {"params": {f"module.{key}": tensor for key, tensor in state.items()}}
    path = tmp_path / "wrapped.pth"
    torch.save(checkpoint, path)

    model = irconstyle.load_checkpoint(official.build(name, **entry["config"]), path).eval()
    arrays = np.load(reference_dir / entry["arrays"])
    with torch.no_grad():
        restored = model(torch.from_numpy(arrays["input"]))
    torch.testing.assert_close(restored, torch.from_numpy(arrays["output"]), rtol=0, atol=1e-4)


def test_official_build_maps_every_keyword():
    model = official.build(
        "NAFNet", img_channel=1, width=8, middle_blk_num=1, enc_blk_nums=[1, 2], dec_blk_nums=[2, 1]
    )
    assert model.stem.in_channels == 1 and model.output.out_channels == 1
    assert [len(stack) for stack in model.encoders] == [1, 2]
    assert [len(stack) for stack in model.decoders] == [2, 1]  # deepest first, as the authors run them
    assert model.decoders[0][0].mixer_scale.shape[1] == 16

    model = official.build("ConStyleNAFNet", dim=8, left_blk_num=[1, 2, 3], bottom_blk_num=2,
                           right_blk_num=[3, 1, 2], Train=True)
    body = model.body
    assert [len(body.encoder1), len(body.encoder2), len(body.encoder3)] == [1, 2, 3]
    assert len(body.bottleneck) == 2
    assert [len(body.decoder1), len(body.decoder2), len(body.decoder3)] == [3, 1, 2]
    assert model.constyle.contrastive


def test_fresh_block_is_identity_and_trains():
    block = NAFBlock(8)
    x = torch.randn(2, 8, 6, 10, requires_grad=True)
    assert torch.equal(block(x), x)
    _randomized(block).train()
    block(x).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())


def test_training_forward_backpropagates_into_body_and_encoder():
    model = ConStyleNAFNet(**SMALL_CONSTYLE, contrastive=True, constyle_options={"queue_size": 16}).train()
    degraded, clean = torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32)
    restored, contrast = model.forward_train(degraded, clean)
    assert restored.shape == degraded.shape
    F.l1_loss(restored, clean).backward()
    assert model.body.output.weight.grad is not None
    assert model.constyle.encoder.stage1[0][0].weight.grad is not None
    assert model.constyle.key_encoder.stage1[0][0].weight.grad is None
    assert contrast.logits.shape == (4, 17)


def test_nafblock_batch_of_one_and_batches_agree():
    """A batch of one takes the fused per-image projection, larger batches a batched matrix product; both give
    each image the same result (up to fp32 rounding of values of order 10), with and without gradients."""
    torch.manual_seed(0)
    block = NAFBlock(16).eval()
    for parameter in (block.mixer_scale, block.ffn_scale):
        torch.nn.init.normal_(parameter)
    images = torch.randn(2, 16, 12, 20).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        together = block(images)
        alone = torch.cat([block(images[i : i + 1].contiguous(memory_format=torch.channels_last)) for i in range(2)])
    torch.testing.assert_close(alone, together, rtol=0, atol=1e-5)
    assert together.is_contiguous(memory_format=torch.channels_last)
    with_grad = block(images[:1].contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(with_grad.detach(), alone[:1], rtol=0, atol=1e-5)
