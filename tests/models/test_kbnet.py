"""KBNet family: parity with the authors' outputs, checkpoint layouts, the fast KBA, any input size.

Tolerances. The fixtures are the authors' fp32 outputs; ours computes the same sums in another order
(KBA as a grouped convolution, LayerNorm fused, channels-last convolutions), so the two differ by fp32
rounding: a relative 2^-24 per operation, growing like the square root of the terms summed (at most a few
hundred per output here) over the ~20 layers of these small models: about 1e-7 · 20 · √300 ≈ 4e-5 on outputs of
magnitude ≤ 2, under the 1e-4 asked for. The ConStyle latents pass through fewer layers and are compared at 2e-6
(their two batch items differ by only ~1e-5 in these fixtures, so a looser bound would not see a swapped item).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import irconstyle
from irconstyle.models import official
from irconstyle.models.constyle import pad_to_multiple
from irconstyle.models.kbnet import ConStyleKBNet, KBBlock, KBNet, KernelBasisAttention
from irconstyle.models.reference import PlainKernelBasisAttention, plain_copy

OUTPUT_TOLERANCE = 1e-4
LATENT_TOLERANCE = 2e-6

SMALL_CONSTYLE = {"width": 8, "encoder_blocks": (1, 1, 1), "bottleneck_blocks": 1, "decoder_blocks": (1, 1, 1)}
SMALL_KBNET = {"width": 8, "encoder_blocks": (1, 1), "bottleneck_blocks": 1, "decoder_blocks": (1, 1)}


def _randomized(model: torch.nn.Module) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return model.eval()


def _load_reference(name: str, manifest2: dict, reference2_dir):
    entry = manifest2[name]
    model = official.build(name, **entry["config"])
    irconstyle.load_checkpoint(model, reference2_dir / entry["checkpoint"])
    arrays = {key: torch.from_numpy(value) for key, value in np.load(reference2_dir / entry["arrays"]).items()}
    return model.eval(), arrays


@pytest.mark.parametrize("name", ["ConStyleKBNet", "KBNet"])
def test_small_model_matches_authors_output(name, manifest2, reference2_dir):
    """``model(x)`` (the ConStyle variant running its encoder inside) gives the authors' restored image."""
    model, arrays = _load_reference(name, manifest2, reference2_dir)
    with torch.no_grad():
        restored = model(arrays["input"])
    assert sum(p.numel() for p in model.parameters()) == manifest2[name]["params_inference"]
    torch.testing.assert_close(restored, arrays["output"], rtol=0, atol=OUTPUT_TOLERANCE)


def test_constyle_kbnet_encoder_and_body_match_authors(manifest2, reference2_dir):
    model, arrays = _load_reference("ConStyleKBNet", manifest2, reference2_dir)
    features = [arrays[f"feature{index}"] for index in range(3)]
    with torch.no_grad():
        encoded = model.constyle(arrays["input"])
        restored = model.body(arrays["input"], arrays["latent_q"], features)
    torch.testing.assert_close(encoded.latent_z, arrays["latent_z"], rtol=0, atol=LATENT_TOLERANCE)
    torch.testing.assert_close(encoded.latent_q, arrays["latent_q"], rtol=0, atol=LATENT_TOLERANCE)
    for ours, theirs in zip(encoded.features, features, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=OUTPUT_TOLERANCE)
    torch.testing.assert_close(restored, arrays["output"], rtol=0, atol=OUTPUT_TOLERANCE)


@pytest.mark.parametrize(
    ("official_name", "layout", "contrastive"),
    [("ConStyleKBNet", "train", True), ("ConStyleKBNet", "inference", False), ("KBNet", "train", None)],
)
def test_full_size_layout_maps_one_to_one(official_name, layout, contrastive, state_dict_shapes2):
    """Every authors' key of the default configuration maps onto exactly one of ours with the same shape."""
    reference = state_dict_shapes2[official_name]
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


@pytest.mark.parametrize(("channels", "layout"), [(8, torch.contiguous_format), (64, torch.channels_last), (6, None)])
def test_fast_kernel_basis_attention_equals_unfold_and_matmul(channels, layout):
    fast = KernelBasisAttention(channels)
    plain = PlainKernelBasisAttention(channels)
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(2, channels, 9, 13)
    attention = torch.randn(2, fast.bases, 9, 13)
    if layout is not None:
        x, attention = x.contiguous(memory_format=layout), attention.contiguous(memory_format=layout)
    # Sums of C/groups·k² + N terms of magnitude ~1: fp32 rounding stays near 1e-6.
    torch.testing.assert_close(fast(x, attention), plain(x, attention), rtol=1e-5, atol=1e-5)


def test_fast_and_plain_gradients_agree():
    model = _randomized(KBNet(**SMALL_KBNET)).train()
    plain = plain_copy(model)
    assert type(plain.encoders[0][0].kba) is PlainKernelBasisAttention
    x = torch.rand(2, 3, 12, 12)
    weights = torch.randn(2, 3, 12, 12)
    (model(x) * weights).sum().backward()
    (plain(x) * weights).sum().backward()
    for (key, fast), slow in zip(model.named_parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(fast.grad, slow.grad, rtol=1e-3, atol=1e-4, msg=key)


@pytest.mark.parametrize("size", [(67, 101), (8, 8), (3, 5)])
def test_constyle_kbnet_any_size_equals_reflect_padded_and_cropped(size):
    """The published model needs multiples of 8; ours pads and crops back."""
    model = _randomized(ConStyleKBNet(**SMALL_CONSTYLE))
    image = torch.rand(2, 3, *size)
    with torch.no_grad():
        restored = model(image)
        padded, _ = pad_to_multiple(image, 8)
        expected = model(padded)[..., : size[0], : size[1]]
    assert restored.shape == image.shape
    torch.testing.assert_close(restored, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("size", [(37, 21), (8, 8)])
def test_kbnet_any_size_equals_zero_padded_and_cropped(size):
    model = _randomized(KBNet(**SMALL_KBNET))
    image = torch.rand(1, 3, *size)
    with torch.no_grad():
        restored = model(image)
        padded = F.pad(image, (0, -size[1] % 4, 0, -size[0] % 4))
        expected = model(padded)[..., : size[0], : size[1]]
    assert restored.shape == image.shape and restored.is_contiguous()
    torch.testing.assert_close(restored, expected, rtol=0, atol=1e-5)


def test_official_build_maps_every_keyword():
    model = official.build(
        "KBNet", img_channel=1, width=16, middle_blk_num=2, enc_blk_nums=[1, 2], dec_blk_nums=[2, 1],
        lightweight=True, ffn_scale=3,
    )
    assert model.stem.in_channels == 1 and model.output.out_channels == 1
    assert [len(stack) for stack in model.encoders] == [1, 2] and len(model.bottleneck) == 2
    assert [len(stack) for stack in model.decoders] == [2, 1]
    block = model.decoders[0][0]
    assert block.local_branch[1].kernel_size == (3, 3) and block.local_branch[1].groups == 32  # lightweight
    assert block.ffn_expand.out_channels == 3 * 32

    model = official.build(
        "ConStyleKBNet", dim=8, left_blk_num=[1, 2, 3], bottom_blk_num=2, right_blk_num=[3, 1, 2],
        lightweight=True, ffn_scale=4, Train=True,
    )
    body = model.body
    assert [len(body.encoder1), len(body.encoder2), len(body.encoder3)] == [1, 2, 3]
    assert len(body.bottleneck) == 2
    assert [len(body.decoder1), len(body.decoder2), len(body.decoder3)] == [3, 1, 2]
    assert body.encoder3[0].local_branch[1].kernel_size == (3, 3)
    assert body.encoder3[0].ffn_expand.out_channels == 4 * 24
    assert body.stem.bias is not None and body.output.bias is None
    assert model.constyle.contrastive


def test_lightweight_constyle_kbnet_blocks_are_the_verified_kbnet_blocks():
    """ConStyleKBNet(lightweight=True) has no fixture of its own: its blocks are KBNet's lightweight blocks
    (checked against the authors above), at the same widths, with the same keys."""
    constyle = ConStyleKBNet(width=8, lightweight=True, ffn_expansion=3, **{
        key: value for key, value in SMALL_CONSTYLE.items() if key != "width"
    })
    block = constyle.body.encoder2[0]
    reference = KBBlock(16, lightweight=True, ffn_expansion=3)
    assert {k: v.shape for k, v in block.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }


@pytest.mark.parametrize(
    ("build", "width"),
    [
        (lambda: ConStyleKBNet(width=16), 48),
        (lambda: ConStyleKBNet(width=12), 36),
        (lambda: KBNet(width=12), 48),
    ],
)
def test_unsupported_widths_are_refused_clearly(build, width):
    with pytest.raises(ValueError, match=f"KBNet block width {width} is not supported"):
        build()


def test_fresh_block_trains():
    block = KBBlock(8)
    x = torch.rand(2, 8, 6, 6, requires_grad=True)
    block(x).square().mean().backward()
    assert all(parameter.grad is not None for parameter in block.parameters())
