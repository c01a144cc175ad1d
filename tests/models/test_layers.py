"""Shared building blocks."""

from __future__ import annotations

import pytest
import torch

from irconstyle.models.layers import LayerNorm2d


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
