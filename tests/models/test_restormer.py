"""Restormer family: parity with the authors' outputs, checkpoint layouts, any input size, the fused blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import irconstyle
from irconstyle.models import official
from irconstyle.models.constyle import pad_to_multiple
from irconstyle.models.restormer import (
    BiasFreeLayerNorm2d,
    ChannelAttention,
    ConStyleRestormer,
    GatedFeedForward,
    Restormer,
    RestormerBlock,
)

SMALL_CONSTYLE = {"width": 8, "encoder_blocks": (1, 1, 1), "bottleneck_blocks": 1, "decoder_blocks": (1, 1, 1),
                  "refinement_blocks": 1}


def _load_reference(name: str, manifest: dict, reference_dir):
    entry = manifest[name]
    model = official.build(name, **entry["config"])
    irconstyle.load_checkpoint(model, reference_dir / entry["checkpoint"])
    arrays = {key: torch.from_numpy(value) for key, value in np.load(reference_dir / entry["arrays"]).items()}
    return model.eval(), arrays


def _randomize(module: torch.nn.Module, scale: float = 0.3) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    return module


@pytest.mark.parametrize("name", ["ConStyleRestormer", "Restormer"])
def test_small_model_matches_authors_output(name, manifest, reference_dir):
    model, arrays = _load_reference(name, manifest, reference_dir)
    with torch.no_grad():
        restored = model(arrays["input"])
    assert restored.is_contiguous()
    torch.testing.assert_close(restored, arrays["output"], rtol=0, atol=1e-4)


def test_constyle_encoder_outputs_match_authors(manifest, reference_dir):
    model, arrays = _load_reference("ConStyleRestormer", manifest, reference_dir)
    with torch.no_grad():
        encoded = model.constyle(arrays["input"])
    torch.testing.assert_close(encoded.latent_z, arrays["latent_z"], rtol=0, atol=1e-4)
    torch.testing.assert_close(encoded.latent_q, arrays["latent_q"], rtol=0, atol=1e-4)
    for index, feature in enumerate(encoded.features):
        torch.testing.assert_close(feature, arrays[f"feature{index}"], rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    ("official_name", "layout", "contrastive"),
    [("ConStyleRestormer", "train", True), ("ConStyleRestormer", "inference", False), ("Restormer", "train", None)],
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


@pytest.mark.parametrize("name", ["ConStyleRestormer", "Restormer"])
@pytest.mark.parametrize("size", [(67, 101), (5, 3)])
def test_any_size_equals_reflect_padded_and_cropped(name, size, manifest, reference_dir):
    model, _ = _load_reference(name, manifest, reference_dir)
    image = torch.rand(2, 3, *size)
    padded, _ = pad_to_multiple(image, 8)
    with torch.no_grad():
        restored = model(image)
        expected = model(padded)[..., : size[0], : size[1]]
    assert restored.shape == image.shape
    torch.testing.assert_close(restored, expected, rtol=0, atol=1e-5)


def _plain_attention(module: ChannelAttention, x: torch.Tensor) -> torch.Tensor:
    """MDTA written the direct way: normalise q and k, softmax, attention @ v, then the 1×1 projection."""
    batch, channels, height, width = x.shape
    query, key, value = module.qkv_depthwise(module.qkv(x)).chunk(3, dim=1)
    query, key, value = (t.reshape(batch, module.heads, -1, height * width) for t in (query, key, value))
    query, key = F.normalize(query, dim=-1), F.normalize(key, dim=-1)
    attention = (query @ key.transpose(-2, -1) * module.temperature).softmax(dim=-1)
    return module.project_out((attention @ value).reshape(batch, channels, height, width))


def _plain_feedforward(module: GatedFeedForward, x: torch.Tensor) -> torch.Tensor:
    gate, content = module.depthwise(module.project_in(x)).chunk(2, dim=1)
    return module.project_out(F.gelu(gate) * content)


@pytest.mark.parametrize("heads", [1, 3])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_fused_attention_and_feedforward_equal_the_direct_formulas(heads, bias, memory_format):
    attention = _randomize(ChannelAttention(12, heads=heads, bias=bias))
    feedforward = _randomize(GatedFeedForward(12, expansion=2.66, bias=bias))
    x = torch.randn(2, 12, 9, 7).contiguous(memory_format=memory_format).requires_grad_()
    residual = torch.randn(2, 12, 9, 7)

    for fused_module, plain in ((attention, _plain_attention), (feedforward, _plain_feedforward)):
        expected = plain(fused_module, x)
        torch.testing.assert_close(fused_module(x), expected, rtol=1e-4, atol=1e-4)
        fused = fused_module(x, residual=residual)
        torch.testing.assert_close(fused, expected + residual, rtol=1e-4, atol=1e-4)

        # Gradients too (the feed-forward gate is multiplied in place).
        weights = torch.randn_like(expected)
        fused_grads = torch.autograd.grad((fused * weights).sum(), [x, *fused_module.parameters()])
        plain_grads = torch.autograd.grad((expected * weights).sum(), [x, *fused_module.parameters()])
        for fused_grad, plain_grad in zip(fused_grads, plain_grads, strict=True):
            torch.testing.assert_close(fused_grad, plain_grad, rtol=1e-4, atol=1e-4)


def test_bias_free_layer_norm_scales_without_centring():
    norm = _randomize(BiasFreeLayerNorm2d(6))
    x = torch.randn(2, 6, 4, 5) + 3.0
    variance = x.var(dim=1, keepdim=True, unbiased=False)
    expected = x / torch.sqrt(variance + 1e-5) * norm.weight.view(1, 6, 1, 1)
    torch.testing.assert_close(norm(x), expected)


def test_block_layer_norm_types_and_bad_arguments():
    with_bias = RestormerBlock(8, heads=2, ffn_expansion=2.66, bias=False, layer_norm="WithBias")
    bias_free = RestormerBlock(8, heads=2, ffn_expansion=2.66, bias=False, layer_norm="BiasFree")
    assert with_bias.norm1.bias is not None and not hasattr(bias_free.norm1, "bias")
    with pytest.raises(ValueError, match="layer_norm"):
        RestormerBlock(8, heads=2, ffn_expansion=2.66, bias=False, layer_norm="with_bias")
    with pytest.raises(ValueError, match="divisible by heads"):
        ChannelAttention(8, heads=3, bias=False)
    with pytest.raises(ValueError, match="heads"):
        Restormer(heads=(1, 2, 4))
    with pytest.raises(ValueError, match="heads"):
        ConStyleRestormer(heads=(1, 0, 4, 8))
    with pytest.raises(ValueError, match="width"):
        Restormer(width=7)
    with pytest.raises(ValueError, match="in_channels"):
        Restormer(in_channels=6)


def test_official_keywords_reach_the_blocks():
    model = official.build(
        "ConStyleRestormer", dim=8, left_blk_num=[1, 2, 1], bottom_blk_num=1, right_blk_num=[2, 1, 1],
        num_refinement_blocks=0, heads=[2, 2, 4, 8], ffn_expansion_factor=2.0, bias=True,
        LayerNorm_type="BiasFree", Train=False,
    )
    body = model.body
    assert [len(body.encoder1), len(body.encoder2), len(body.decoder1), len(body.decoder2)] == [1, 2, 2, 1]
    assert len(body.refinement) == 0
    assert body.encoder1[0].attention.heads == 2
    assert body.decoder3[0].attention.heads == 4
    assert body.bottleneck[0].attention.heads == 8
    assert body.encoder1[0].feedforward.project_out.in_channels == 16
    assert body.latent_fusion.bias is not None and body.output.bias is not None
    assert isinstance(body.encoder1[0].norm1, BiasFreeLayerNorm2d)
    assert isinstance(body.feature_adapters[0][1], torch.nn.PReLU)
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 3, 16, 24)).shape == (1, 3, 16, 24)


def test_dual_pixel_restormer_takes_six_channels():
    model = official.build(
        "Restormer", inp_channels=6, out_channels=3, dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1,
        dual_pixel_task=True,
    )
    assert model.dual_pixel_skip is not None
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 6, 20, 12)).shape == (1, 3, 20, 12)


def test_constyle_restormer_training_step_reaches_every_trainable_parameter():
    model = ConStyleRestormer(**SMALL_CONSTYLE, contrastive=True, constyle_options={"queue_size": 16})
    degraded, clean = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    restored, contrast = model.forward_train(degraded, clean)
    (F.l1_loss(restored, clean) + contrast.logits.logsumexp(dim=1).mean()).backward()
    missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
