import pytest
import torch

from irconstyle import build_model
from irconstyle.models.layers import LayerNorm2d
from irconstyle.models.reference import PlainLayerNorm2d, plain_copy

SMALL = {
    "constyle_nafnet": dict(width=8, encoder_blocks=(1, 1, 1), bottleneck_blocks=1, decoder_blocks=(1, 1, 1)),
    "nafnet": dict(width=8, encoder_blocks=(1, 1), bottleneck_blocks=1, decoder_blocks=(1, 1)),
    "constyle_restormer": dict(
        width=8, encoder_blocks=(1, 1, 1), bottleneck_blocks=1, decoder_blocks=(1, 1, 1), refinement_blocks=1,
        heads=(1, 2, 2, 4), bias=True,
    ),
    "restormer": dict(width=8, level_blocks=(1, 1, 1, 1), refinement_blocks=1, heads=(1, 2, 2, 4),
                      layer_norm="BiasFree"),
}


def _randomized(name: str) -> torch.nn.Module:
    """A small model with its default-initialised weights, and every scale, norm, bias and temperature perturbed.

    (Fresh NAFBlocks are identities and fresh norms are 1/0, which would hide a wrong formula.)
    """
    model = build_model(name, **SMALL[name])
    with torch.no_grad():
        for key, parameter in model.named_parameters():
            if parameter.dim() <= 1 or "scale" in key or "temperature" in key:
                parameter.add_(torch.randn_like(parameter), alpha=0.3)
    return model


@pytest.mark.parametrize("name", sorted(SMALL))
def test_fast_model_equals_its_plain_formulation(name):
    model = _randomized(name).eval()
    plain = plain_copy(model)
    x = torch.rand(2, 3, 24, 40)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["constyle_nafnet", "restormer"])
def test_fast_and_plain_gradients_agree(name):
    model = _randomized(name).train()
    plain = plain_copy(model)
    x = torch.rand(2, 3, 16, 16)
    weights = torch.randn(2, 3, 16, 16)
    (model(x) * weights).sum().backward()
    (plain(x) * weights).sum().backward()
    for (key, fast), slow in zip(model.named_parameters(), plain.parameters(), strict=True):
        if fast.grad is not None or slow.grad is not None:
            torch.testing.assert_close(fast.grad, slow.grad, rtol=1e-3, atol=1e-4, msg=key)


def test_plain_copy_computes_in_nchw_and_leaves_the_model_alone():
    model = _randomized("nafnet").eval()
    plain = plain_copy(model)
    assert model.channels_last and not plain.channels_last
    assert type(model.encoders[0][0]).__name__ == "NAFBlock"
    assert type(plain.encoders[0][0]).__name__ == "PlainNAFBlock"
    seen = []
    plain.encoders[0][0].register_forward_hook(lambda module, args, out: seen.append(out.is_contiguous()))
    plain(torch.rand(1, 3, 16, 16))
    assert seen == [True]


def test_plain_layer_norm_matches_the_fused_one_on_both_layouts():
    fused, plain = LayerNorm2d(5), PlainLayerNorm2d(5)
    with torch.no_grad():
        fused.weight.normal_()
        fused.bias.normal_()
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(2, 5, 6, 7) * 3 + 1
    for layout in (torch.contiguous_format, torch.channels_last):
        torch.testing.assert_close(fused(x.contiguous(memory_format=layout)), plain(x), rtol=1e-5, atol=1e-5)


def test_plain_copy_refuses_maxim():
    with pytest.raises(ValueError, match="MAXIM"):
        plain_copy(build_model("maxim"))
