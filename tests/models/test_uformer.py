"""Uformer family: parity with the authors' outputs, checkpoint layouts, any input size, every constructor option."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import irconstyle
from irconstyle.models import official
from irconstyle.models.constyle import pad_to_multiple
from irconstyle.models.uformer import (
    ConStyleUformer,
    LeWinBlock,
    LeWinStage,
    LocallyEnhancedFeedForward,
    Uformer,
    WindowAttention,
    drop_path,
    shifted_window_mask,
)

UNIT_ROUNDOFF = 2.0**-24  # fp32
# The issue's bound on the difference from the authors' outputs.
REQUIRED = 1e-4

SMALL_CONSTYLE = dict(img_size=32, width=8, depths=(1, 1, 1, 1, 1, 1, 1), heads=(1, 1, 2, 2, 2, 1, 1), window_size=4)
SMALL_UFORMER = dict(img_size=32, width=4, depths=(1, 1, 1, 1, 1, 1, 1, 1, 1), heads=(1, 1, 2, 2, 2, 2, 2, 1, 1),
                     window_size=2)


def _load_reference(name: str, manifest: dict, reference_dir: Path):
    entry = manifest[name]
    model = official.build(name, **entry["config"])
    irconstyle.load_checkpoint(model, reference_dir / entry["checkpoint"])
    arrays = {key: torch.from_numpy(value) for key, value in np.load(reference_dir / entry["arrays"]).items()}
    return model.eval(), arrays


def fp32_tolerance(reference: torch.Tensor, *, layers: int, reduction: int) -> float:
    """The fp32 rounding error we expect between two implementations that differ in summation order only.

    Each of ``layers`` sequential reductions of up to ``reduction`` terms adds a relative error of about
    √reduction·u (u = 2⁻²⁴) with a random sign, so they add up like a random walk: √(layers·reduction)·u,
    relative to the largest value. Four of those (a 4σ bound) is the tolerance.
    """
    return 4 * math.sqrt(layers * reduction) * UNIT_ROUNDOFF * reference.abs().max().item()


# The deepest path of each small fixture: 8 reductions per LeWin block (q/kv, logits, attention·v, projection,
# two norms, two MLP layers) plus the U-Net's convolutions (and ConStyle's); the widest reduction is a 4×4 conv
# over 64 channels (Uformer) or ConStyle's 3×3 conv over 256 channels.
_OUTPUT_ERROR_MODEL = {"ConStyleUformer": dict(layers=8 * 11 + 10 + 12, reduction=9 * 256),
                       "Uformer": dict(layers=8 * 14 + 10, reduction=16 * 64)}


@pytest.mark.parametrize("name", ["ConStyleUformer", "Uformer"])
def test_small_model_matches_authors_output(name, manifest2, reference2_dir):
    model, arrays = _load_reference(name, manifest2, reference2_dir)
    tolerance = min(REQUIRED, fp32_tolerance(arrays["output"], **_OUTPUT_ERROR_MODEL[name]))
    with torch.no_grad():
        restored = model(arrays["input"])
        if name == "ConStyleUformer":  # the authors' call: the body driven by the encoder's outputs
            encoded = model.constyle(arrays["input"])
            torch.testing.assert_close(model.body(arrays["input"], encoded.latent_q, encoded.features), restored)
    assert restored.is_contiguous()
    torch.testing.assert_close(restored, arrays["output"], rtol=0, atol=tolerance)


def test_constyle_latents_and_features_match_authors(manifest2, reference2_dir):
    model, arrays = _load_reference("ConStyleUformer", manifest2, reference2_dir)
    with torch.no_grad():
        encoded = model.constyle(arrays["input"])
    # Ten 3×3 convs up to 256 channels, the pooling and two linear heads for the latents.
    for key, value in (("latent_z", encoded.latent_z), ("latent_q", encoded.latent_q)):
        tolerance = fp32_tolerance(arrays[key], layers=13, reduction=9 * 256)
        # The latents barely depend on the input (see the fixtures' README): the tolerance must still tell the
        # two batch items apart, or this comparison could not catch a wrong input.
        assert tolerance < (arrays[key][0] - arrays[key][1]).abs().max()
        torch.testing.assert_close(value, arrays[key], rtol=0, atol=tolerance)
    for index, feature in enumerate(encoded.features):
        tolerance = fp32_tolerance(arrays[f"feature{index}"], layers=3 + 2 * index, reduction=9 * 128)
        torch.testing.assert_close(feature, arrays[f"feature{index}"], rtol=0, atol=tolerance)


@pytest.mark.parametrize(
    ("entry", "official_name", "kwargs", "layout"),
    [
        ("ConStyleUformer", "ConStyleUformer", {"Train": True}, "train"),
        ("ConStyleUformer", "ConStyleUformer", {"Train": False}, "inference"),
        ("Uformer", "Uformer", {}, "train"),
        ("Uformer_modulator", "Uformer", {"img_size": 128, "modulator": True}, "train"),
    ],
)
def test_full_size_layout_maps_one_to_one(entry, official_name, kwargs, layout, state_dict_shapes2):
    """Every authors' key maps onto exactly one of ours with the same shape, and nothing is left over."""
    reference = state_dict_shapes2[entry]
    architecture = official.ARCHITECTURES[official_name]
    with torch.device("meta"):
        model = official.build(official_name, **kwargs)
    ours = {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}
    converted = {official.convert_key(key, architecture): tuple(shape) for key, shape in reference[layout].items()}

    assert len(converted) == len(reference[layout]), "two authors' keys map onto the same key of ours"
    assert sorted(set(converted) - set(ours)) == []
    assert sorted(set(ours) - set(converted)) == []
    assert {key: shape for key, shape in converted.items() if ours[key] != shape} == {}
    assert sum(p.numel() for p in model.parameters()) == reference[f"params_{layout}"]


@pytest.mark.parametrize("name", ["ConStyleUformer", "Uformer"])
def test_non_square_input_equals_padded_and_cropped(name, manifest2, reference2_dir):
    """The published code takes square window-multiple inputs only; ours pads any size and crops back."""
    model, _ = _load_reference(name, manifest2, reference2_dir)
    image = torch.rand(1, 3, 37, 70)
    padded, _ = pad_to_multiple(image, model.size_multiple)
    assert padded.shape[-2] != padded.shape[-1]
    with torch.no_grad():
        restored = model(image)
        expected = model(padded)[..., :37, :70]
    assert restored.shape == image.shape
    torch.testing.assert_close(restored, expected, rtol=0, atol=1e-5)


def test_size_multiple_follows_the_windows_of_every_level():
    assert ConStyleUformer().size_multiple == 64  # 8 levels' worth: 2³ × window 8
    assert Uformer(width=4, depths=[0] * 9).size_multiple == 128  # 2⁴ × 8
    # img_size 32, window 8: levels 1/4 and 1/8 (sides 8 and 4) clamp their windows to 8 and 4.
    assert ConStyleUformer(img_size=32, width=4, depths=[0] * 7).size_multiple == 32
    with pytest.raises(ValueError, match="img_size must be at least 16"):
        Uformer(img_size=8)
    with pytest.raises(ValueError, match="img_size must be at least 8"):
        ConStyleUformer(img_size=4)


def test_unshifted_block_on_a_non_square_map_is_two_square_blocks():
    """Windows do not interact without a shift and with a per-token MLP: an 8×16 map is two 8×8 maps."""
    block = LeWinBlock(8, heads=2, window=4, token_mlp="mlp", modulator=True).eval()
    x = torch.randn(2, 8, 16, 8)
    with torch.no_grad():
        whole = block(x)
        halves = torch.cat([block(x[:, :, :8]), block(x[:, :, 8:])], dim=2)
    torch.testing.assert_close(whole, halves, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="multiple of the 4×4 window"):
        block(torch.randn(1, 6, 8, 8))


def test_shift_mask_separates_exactly_the_wrapped_tokens_on_a_non_square_map():
    height, width, window, shift = 8, 12, 4, 2
    mask = shifted_window_mask(height, width, window, shift, torch.device("cpu"))
    assert mask.shape == ((height // window) * (width // window), window * window, window * window)
    # After rolling by −shift, a token came from the other side of the map iff its row (column) is in the last
    # ``shift`` rows (columns); two tokens of one window may attend to each other iff both wrapped alike.
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    wrapped = torch.stack([rows >= height - shift, cols >= width - shift], dim=-1)  # H×W×2
    windows = wrapped.view(height // window, window, width // window, window, 2).permute(0, 2, 1, 3, 4)
    windows = windows.reshape(-1, window * window, 2)
    apart = (windows[:, :, None, :] != windows[:, None, :, :]).any(-1)
    assert torch.equal(mask != 0, apart)
    assert set(mask.unique().tolist()) == {0.0, -100.0}


def test_shifted_windows_and_img_size_clamp_as_published():
    model = ConStyleUformer(img_size=32, width=4, depths=[2] * 7, heads=[1] * 7, window_size=8, modulator=False)
    body = model.body
    # Level 1 (side 32): window 8, the second block shifted by 4. Level 3 (side 8 ≤ 8) and the bottleneck
    # (side 4): whole-side windows, never shifted, and position-bias tables of their size.
    assert [block.shift for block in body.encoder1.blocks] == [0, 4]
    assert [block.window for block in body.encoder3.blocks] == [8, 8]
    assert [block.shift for block in body.encoder3.blocks + body.bottleneck.blocks] == [0, 0, 0, 0]
    assert body.bottleneck.blocks[0].attention.position_bias_table.shape == (7 * 7, 1)
    unshifted = ConStyleUformer(img_size=32, width=4, depths=[2] * 7, heads=[1] * 7, shifted_windows=False)
    assert all(block.shift == 0 for block in unshifted.modules() if isinstance(block, LeWinBlock))
    # The modulator is window_size² long and cannot fit a clamped window: a clear error, not a shape crash.
    with pytest.raises(ValueError, match="modulator"):
        ConStyleUformer(img_size=16, width=4, depths=[1] * 7, heads=[1] * 7, window_size=8)
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 3, 20, 44)).shape == (1, 3, 20, 44)


def test_cross_norm_is_loaded_but_does_not_change_the_output(manifest2, reference2_dir):
    model, arrays = _load_reference("Uformer", manifest2, reference2_dir)
    assert model.decoders[0].blocks[0].cross_modulator is not None
    image = arrays["input"][:1, :, :32, :32]
    with torch.no_grad():
        before = model(image)
        for module in model.modules():
            if isinstance(module, LeWinBlock) and module.cross_modulator is not None:
                module.cross_norm.weight.mul_(3.0).add_(1.0)
        after = model(image)
        torch.testing.assert_close(after, before, rtol=0, atol=0)
        model.decoders[0].blocks[0].cross_modulator.add_(1.0)
        assert (model(image) - before).abs().max() > 1e-3  # the cross modulator itself does matter


def _randomize(module: torch.nn.Module, scale: float = 0.3) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    return module


def test_conv_token_projection_is_a_separable_conv_inside_each_window():
    conv = _randomize(WindowAttention(8, window=4, heads=2, token_projection="conv"))
    assert {name.split(".")[0] for name, _ in conv.named_parameters()} >= {"query", "key", "value"}
    windows = torch.rand(3, 16, 8)
    # A centre-tap identity depthwise kernel makes each projection relu(x) followed by its 1×1 conv: on
    # non-negative tokens, the linear projection with the 1×1 weights.
    linear = WindowAttention(8, window=4, heads=2)
    with torch.no_grad():
        for part in (conv.query, conv.key, conv.value):
            part.depthwise.weight.zero_()[:, :, 1, 1] = 1.0
            part.depthwise.bias.zero_()
        linear.position_bias_table.copy_(conv.position_bias_table)
        linear.project.load_state_dict(conv.project.state_dict())
        linear.query.weight.copy_(conv.query.pointwise.weight.flatten(1))
        linear.query.bias.copy_(conv.query.pointwise.bias)
        linear.key_value.weight.copy_(torch.cat([conv.key.pointwise.weight, conv.value.pointwise.weight]).flatten(1))
        linear.key_value.bias.copy_(torch.cat([conv.key.pointwise.bias, conv.value.pointwise.bias]))
        torch.testing.assert_close(conv(windows), linear(windows), rtol=1e-5, atol=1e-5)
    # With a real 3×3 kernel a token sees its neighbours, but never another window (zero padding per window).
    _randomize(conv)
    changed = windows.clone()
    changed[1] += 1.0
    with torch.no_grad():
        out, out_changed = conv(windows), conv(changed)
    torch.testing.assert_close(out[[0, 2]], out_changed[[0, 2]])
    assert (out[1] - out_changed[1]).abs().max() > 1e-3
    # The authors' key names reach ours.
    architecture = official.ARCHITECTURES["Uformer"]
    assert official.convert_key("encoderlayer_0.blocks.1.attn.qkv.to_v.depthwise.weight", architecture) == (
        "encoders.0.blocks.1.attention.value.depthwise.weight"
    )
    model = official.build("Uformer", token_projection="conv", **_official(SMALL_UFORMER))
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    model(x).sum().backward()
    assert model.encoders[0].blocks[0].attention.key.depthwise.weight.grad.abs().sum() > 0


def _official(ours: dict) -> dict:
    """Our small configuration in the authors' keyword names."""
    names = {value: key for key, value in official.ARCHITECTURES["Uformer"].keywords.items()}
    return {names[key]: value for key, value in ours.items()}


def test_token_mlp_variants():
    leff = _randomize(Uformer(**SMALL_UFORMER, token_mlp="leff")).eval()
    fast = Uformer(**SMALL_UFORMER, token_mlp="fastleff").eval()
    # "fastleff": LeFF whose depthwise conv has no bias (the compiled kernel the published one used has none).
    fast_state = {k: v for k, v in leff.state_dict().items() if not k.endswith("feedforward.depthwise.bias")}
    fast.load_state_dict(fast_state)  # strict: exactly the LeFF keys less the depthwise biases
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert (fast(x) - leff(x)).abs().max() > 1e-3
        for module in leff.modules():
            if isinstance(module, LocallyEnhancedFeedForward):
                module.depthwise.bias.zero_()
        torch.testing.assert_close(fast(x), leff(x), rtol=0, atol=0)
    # "mlp" and "ffn" are two names of the plain MLP: no depthwise conv at all.
    mlp = _randomize(Uformer(**SMALL_UFORMER, token_mlp="mlp")).eval()
    ffn = Uformer(**SMALL_UFORMER, token_mlp="ffn").eval()
    ffn.load_state_dict(mlp.state_dict())
    assert not any("depthwise" in key for key in mlp.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(mlp(x), ffn(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="token_mlp"):
        Uformer(**SMALL_UFORMER, token_mlp="conv")
    with pytest.raises(ValueError, match="token_projection"):
        Uformer(**SMALL_UFORMER, token_projection="sep")


def test_dropouts_act_in_training_only():
    noisy = _randomize(Uformer(**SMALL_UFORMER, dropout=0.3, attention_dropout=0.3, drop_path_rate=0.5))
    clean = Uformer(**SMALL_UFORMER, drop_path_rate=0.0)
    clean.load_state_dict(noisy.state_dict())
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(noisy.eval()(x), clean.eval()(x), rtol=0, atol=0)
        noisy.train()
        assert (noisy(x) - noisy(x)).abs().max() > 1e-3
    assert {m.p for m in noisy.modules() if isinstance(m, torch.nn.Dropout)} == {0.3}
    x = torch.ones(1000, 4)
    dropped = drop_path(x, 0.25, training=True)
    kept = dropped[:, 0] != 0
    assert torch.all(dropped[kept] == 1 / 0.75) and torch.all(dropped[~kept] == 0)
    assert 0.65 < kept.float().mean() < 0.85
    assert drop_path(x, 0.25, training=False) is x


def test_drop_path_rates_follow_the_published_schedule():
    model = ConStyleUformer(img_size=32, width=4, depths=[1, 2, 1, 3, 1, 1, 2], heads=[1] * 7, window_size=4,
                            drop_path_rate=0.3)
    body = model.body

    def rates(stage):
        return [block.drop_path_rate for block in stage.blocks]

    ramp = torch.linspace(0, 0.3, 4).tolist()
    assert rates(body.encoder1) + rates(body.encoder2) + rates(body.encoder3) == ramp
    assert rates(body.bottleneck) == [0.3] * 3
    assert rates(body.decoder3) + rates(body.decoder2) + rates(body.decoder1) == ramp[::-1]
    with pytest.raises(ValueError, match="drop-path"):
        ConStyleUformer(depths=[1, 1, 1, 1, 2, 2, 2])
    uformer = Uformer(**{**SMALL_UFORMER, "depths": [1, 1, 1, 1, 2, 1, 1, 1, 1]}, drop_path_rate=0.2)
    assert [b.drop_path_rate for b in uformer.bottleneck.blocks] == [0.2, 0.2]
    assert uformer.encoders[3].blocks[0].drop_path_rate == pytest.approx(0.2)
    assert uformer.decoders[0].blocks[0].drop_path_rate == pytest.approx(0.2)


def test_gradient_checkpointing_gives_the_same_gradients():
    plain = _randomize(ConStyleUformer(**SMALL_CONSTYLE, drop_path_rate=0.0)).train()
    checkpointed = ConStyleUformer(**SMALL_CONSTYLE, drop_path_rate=0.0, gradient_checkpointing=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    stages = [stage for stage in checkpointed.modules() if isinstance(stage, LeWinStage) and len(stage.blocks)]
    assert len(stages) == 7 and all(stage.gradient_checkpointing for stage in stages)
    x = torch.rand(2, 3, 32, 32)
    plain(x).square().sum().backward()
    checkpointed(x).square().sum().backward()
    for (key, one), other in zip(plain.named_parameters(), checkpointed.parameters(), strict=True):
        if one.grad is not None:
            torch.testing.assert_close(one.grad, other.grad, rtol=1e-4, atol=1e-6, msg=key)


def test_uformer_channels_and_residual_rule():
    four_in = official.build("Uformer", dd_in=4, in_chans=3, **_official(SMALL_UFORMER))
    assert four_in.stem.in_channels == 4 and not four_in.residual
    gray = official.build("Uformer", dd_in=1, in_chans=1, **_official(SMALL_UFORMER))
    with torch.no_grad():
        assert four_in.eval()(torch.rand(1, 4, 20, 36)).shape == (1, 3, 20, 36)
        assert gray.eval()(torch.rand(1, 1, 16, 16)).shape == (1, 1, 16, 16)
    assert Uformer(**SMALL_UFORMER).residual
    with pytest.raises(ValueError, match="out_channels"):
        official.build("Uformer", in_chans=1)


def test_official_keywords_reach_the_blocks():
    model = official.build(
        "ConStyleUformer", img_size=64, dim=8, depths=[1, 2, 1, 1, 1, 2, 1], num_heads=[1, 2, 2, 4, 4, 2, 1],
        win_size=4, mlp_ratio=2.0, qkv_bias=False, qk_scale=0.5, token_mlp="mlp", modulator=False,
        cross_modulator=True, Train=False,
    )
    body = model.body
    assert [len(body.encoder1.blocks), len(body.encoder2.blocks), len(body.decoder2.blocks)] == [1, 2, 2]
    block = body.decoder3.blocks[0]
    assert block.attention.heads == 4 and block.attention.scale == 0.5
    assert block.attention.query.bias is None and block.feedforward.expand.out_features == 64
    assert block.window_modulator is None and block.cross_modulator.shape == (16, 32)
    assert body.encoder1.blocks[0].cross_modulator is None  # encoder blocks never modulate
    assert body.stem.bias is not None and body.output.bias is not None and body.latent_fusion.bias is None
    assert isinstance(body.stem_activation, torch.nn.LeakyReLU)
    with pytest.raises(TypeError, match="unknown keyword"):
        official.build("ConStyleUformer", norm_layer=torch.nn.LayerNorm)
    with pytest.raises(ValueError, match="depths"):
        ConStyleUformer(depths=[2, 2, 2])
    with pytest.raises(ValueError, match="divisible by heads"):
        ConStyleUformer(heads=[3] * 7)


def test_constyle_uformer_training_step_reaches_every_trainable_parameter():
    model = ConStyleUformer(**SMALL_CONSTYLE, cross_modulator=True, contrastive=True,
                            constyle_options={"queue_size": 16})
    degraded, clean = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    restored, contrast = model.forward_train(degraded, clean)
    (F.l1_loss(restored, clean) + contrast.logits.logsumexp(dim=1).mean()).backward()
    missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    # As published, the cross-attention norm is computed and discarded: it never gets a gradient.
    assert missing and all(".cross_norm." in name for name in missing)
