"""Shared building blocks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from irconstyle.models.layers import LayerNorm2d, fused_linear, onednn_fusable, pointwise_conv


def _explicit_layer_norm(x, weight, bias, eps):
    mean = x.mean(dim=1, keepdim=True)
    variance = (x - mean).square().mean(dim=1, keepdim=True)
    return (x - mean) / torch.sqrt(variance + eps) * weight[:, None, None] + bias[:, None, None]


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_layer_norm_2d_normalises_channels_per_pixel(memory_format):
    norm = LayerNorm2d(5, eps=1e-6).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-1, 1)
    x = (torch.randn(2, 5, 4, 3, dtype=torch.float64) * 3 + 1).contiguous(memory_format=memory_format)
    x.requires_grad_(True)
    ours = norm(x)
    expected = _explicit_layer_norm(x, norm.weight, norm.bias, 1e-6)
    torch.testing.assert_close(ours, expected)

    upstream = torch.randn_like(expected)
    grads = torch.autograd.grad((ours * upstream).sum(), (x, norm.weight, norm.bias))
    expected_grads = torch.autograd.grad((expected * upstream).sum(), (x, norm.weight, norm.bias))
    for ours_grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(ours_grad, expected_grad)


def test_layer_norm_2d_eps_is_inside_the_square_root():
    constant = torch.full((1, 4, 2, 2), 3.0)
    assert torch.equal(LayerNorm2d(4, eps=1.0)(constant), torch.zeros_like(constant))
    x = torch.tensor([0.0, 2.0]).view(1, 2, 1, 1)  # variance 1
    torch.testing.assert_close(LayerNorm2d(2, eps=3.0)(x).flatten(), torch.tensor([-0.5, 0.5]))


def _channels_last(*shape: int) -> torch.Tensor:
    return torch.randn(*shape).contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("with_residual", [False, True])
@pytest.mark.parametrize("grad", [False, True])
def test_pointwise_conv_is_a_1x1_conv_plus_residual(with_residual, grad):
    """Fused (no gradient) or not, the result is conv1x1(x) + residual up to fp32 rounding of a 48-term sum,
    and channels-last in, channels-last out."""
    torch.manual_seed(0)
    conv = nn.Conv2d(48, 24, 1)
    x, residual = _channels_last(2, 48, 9, 11), _channels_last(2, 24, 9, 11)
    expected = F.conv2d(x, conv.weight, conv.bias) + (residual if with_residual else 0)
    with torch.set_grad_enabled(grad):
        out = pointwise_conv(x, conv, residual=residual if with_residual else None)
    tolerance = 8 * 48**0.5 * 2**-24 * expected.abs().max().item()
    assert (out - expected).abs().max().item() <= tolerance
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert out.requires_grad == grad
    if grad:
        out.sum().backward()
        assert conv.weight.grad is not None


def test_pointwise_conv_takes_a_weight_and_other_layouts():
    torch.manual_seed(0)
    weight, bias = torch.randn(5, 7, 1, 1), torch.randn(5)
    x = torch.randn(1, 7, 4, 6)  # contiguous (NCHW): the F.conv2d path
    torch.testing.assert_close(pointwise_conv(x, weight, bias), F.conv2d(x, weight, bias))
    with torch.no_grad():
        fused = pointwise_conv(x.contiguous(memory_format=torch.channels_last), weight, bias)
    torch.testing.assert_close(fused, F.conv2d(x, weight, bias), rtol=0, atol=1e-5)


def test_fused_linear_falls_back_where_onednn_cannot_run():
    """Under autocast and with gradients the plain ops run (the fused op has neither); results agree."""
    torch.manual_seed(0)
    x, weight, bias, residual = torch.randn(3, 10, 16), torch.randn(8, 16), torch.randn(8), torch.randn(3, 10, 8)
    expected = residual + F.linear(x, weight, bias)
    assert onednn_fusable(x, weight) == torch.backends.mkldnn.is_available()
    assert not onednn_fusable(x, weight.t().contiguous().t())  # strided weight
    with torch.no_grad():
        torch.testing.assert_close(fused_linear(x, weight, bias, residual=residual), expected)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not onednn_fusable(x, weight)
    assert not onednn_fusable(x.requires_grad_(), weight)
    torch.testing.assert_close(fused_linear(x, weight, bias, residual=residual), expected)
