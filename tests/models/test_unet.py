"""The general ConStyle restoration U-Net, with stand-in blocks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from irconstyle import build_model
from irconstyle.models.constyle import ConStyleEncoder
from irconstyle.models.unet import STAGES, ConStyleUNet


def _conv_blocks(channels: int, count: int, stage: str) -> nn.Sequential:
    return nn.Sequential(*(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(count)))


def _unet(**overrides) -> ConStyleUNet:
    options = dict(
        width=8,
        encoder_blocks=(1, 2, 3),
        bottleneck_blocks=1,
        decoder_blocks=(3, 2, 1),
        refinement_blocks=1,
        make_blocks=_conv_blocks,
    )
    return ConStyleUNet(**{**options, **overrides})


def _inputs(batch=2, height=32, width=48):
    image = torch.rand(batch, 3, height, width)
    encoded = ConStyleEncoder().eval()(image)
    return image, encoded.latent_q.detach(), [f.detach() for f in encoded.features]


def test_block_factory_gets_every_stage_with_its_width_and_count():
    calls = []

    def recording(channels, count, stage):
        calls.append((stage, channels, count))
        return _conv_blocks(channels, count, stage)

    _unet(make_blocks=recording)
    assert [stage for stage, _, _ in calls] == list(STAGES)
    assert calls == [
        ("encoder1", 8, 1), ("encoder2", 16, 2), ("encoder3", 24, 3), ("bottleneck", 32, 1),
        ("decoder3", 32, 1), ("decoder2", 24, 2), ("decoder1", 16, 3), ("refinement", 16, 1),
    ]


def test_output_is_global_residual_and_depends_on_latent():
    unet = _unet().eval()
    image, latent_q, features = _inputs()
    with torch.no_grad():
        restored = unet(image, latent_q, features)
        other = unet(image, latent_q + 1.0, features)
        assert restored.shape == image.shape
        assert not torch.allclose(restored, other)
        unet.output.weight.zero_()
        assert torch.equal(unet(image, latent_q, features), image)


def test_channels_last_gives_the_same_result():
    image, latent_q, features = _inputs()
    plain = _unet().eval()
    fast = _unet(channels_last=True).eval()
    fast.load_state_dict(plain.state_dict())
    with torch.no_grad():
        expected = plain(image, latent_q, features)
        result = fast(image, latent_q, features)
    assert result.is_contiguous()
    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-5)


def test_adapter_activation_choice():
    leaky = _unet()
    prelu = _unet(adapter_activation="prelu")
    assert isinstance(leaky.feature_adapters[0][1], nn.LeakyReLU)
    assert leaky.feature_adapters[0][1].negative_slope == 0.1
    assert prelu.feature_adapters[2][1].weight.shape == (8,)
    with pytest.raises(ValueError, match="adapter_activation"):
        _unet(adapter_activation="relu")


def test_bad_inputs_give_clear_errors():
    unet = _unet().eval()
    image, latent_q, features = _inputs(height=32, width=48)
    with pytest.raises(ValueError, match="not a multiple of 8"):
        unet(image[..., :30, :], latent_q, features)
    with pytest.raises(ValueError, match="ConStyle feature 1"):
        unet(image, latent_q, [features[0], features[1][..., :4, :], features[2]])
    with pytest.raises(ValueError, match="latent_q"):
        unet(image, latent_q[:1], features)
    with pytest.raises(ValueError, match="one entry per level"):
        _unet(encoder_blocks=(1, 1))
    with pytest.raises(ValueError, match="multiple of 4"):
        _unet(width=6)


@pytest.mark.parametrize("name", ["constyle_nafnet", "constyle_restormer"])
def test_ablations_cut_what_they_name(name):
    """Without feature maps the output ignores ConStyle's maps; without the latent it ignores the latent; each
    removes exactly its own layers."""
    small = {"width": 8, "encoder_blocks": [1, 1, 1], "bottleneck_blocks": 1, "decoder_blocks": [1, 1, 1]}
    if name == "constyle_restormer":
        small |= {"refinement_blocks": 1}
    torch.manual_seed(0)
    image = torch.rand(1, 3, 32, 32)
    latent = torch.randn(1, 128)
    features = [torch.randn(1, c, 32 >> level, 32 >> level) for level, c in enumerate((32, 64, 128), start=1)]
    other_latent = torch.randn(1, 128)
    other_features = [torch.randn_like(f) for f in features]
    full = build_model(name, **small).body.eval()
    no_maps = build_model(name, **small, use_feature_maps=False).body.eval()
    no_latent = build_model(name, **small, use_latent=False).body.eval()
    with torch.no_grad():
        assert torch.equal(no_maps(image, latent, features), no_maps(image, latent, other_features))
        assert not torch.equal(no_maps(image, latent, features), no_maps(image, other_latent, features))
        assert torch.equal(no_latent(image, latent, features), no_latent(image, other_latent, features))
        assert not torch.equal(no_latent(image, latent, features), no_latent(image, latent, other_features))
        assert not torch.equal(full(image, latent, features), full(image, other_latent, features))
    keys = set(full.state_dict())
    assert keys - set(no_maps.state_dict()) == {k for k in keys if k.startswith("feature_adapters.")}
    assert keys - set(no_latent.state_dict()) == {k for k in keys if k.startswith("latent_projection.")}
