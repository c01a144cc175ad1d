"""Google's multi-stage MAXIM: padding and resizing as Google's code does them, and the model's contract.

The padding and resize references here are written from the definitions (numpy's ``reflect`` padding and
``jax.image.resize``'s triangle-kernel weights), independently of the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from irconstyle.models.maxim import MaximMultiStage, _resize_matrix, pad_as_google_eval


def _run_eval_padding(image: np.ndarray, factor: int = 64) -> tuple[np.ndarray, tuple[slice, slice]]:
    """Google's run_eval.py: reflect to even sides at the bottom/right, then half of the gap on each side."""
    height, width = image.shape[:2]
    image = np.pad(image, [(0, height % 2), (0, width % 2), (0, 0)], mode="reflect")
    even_h, even_w = image.shape[:2]
    pad_h = ((even_h + factor) // factor) * factor - even_h if even_h % factor else 0
    pad_w = ((even_w + factor) // factor) * factor - even_w if even_w % factor else 0
    image = np.pad(image, [(pad_h // 2, pad_h // 2), (pad_w // 2, pad_w // 2), (0, 0)], mode="reflect")
    top = image.shape[0] // 2 - even_h // 2
    left = image.shape[1] // 2 - even_w // 2
    return image, (slice(top, top + height), slice(left, left + width))


@pytest.mark.parametrize("size", [(97, 131), (64, 64), (128, 70), (5, 9), (1, 3), (200, 129)])
def test_padding_is_google_evaluation_padding(size):
    image = np.random.default_rng(0).random((*size, 3)).astype(np.float32)
    expected, (rows, cols) = _run_eval_padding(image)
    padded, crop = pad_as_google_eval(torch.from_numpy(image).permute(2, 0, 1)[None])
    np.testing.assert_array_equal(padded[0].permute(1, 2, 0).numpy(), expected)
    assert crop == (rows, cols)
    np.testing.assert_array_equal(padded[0, :, crop[0], crop[1]].permute(1, 2, 0).numpy(), image)


def _jax_resize_weights(size: int, new_size: int) -> np.ndarray:
    """``jax.image.resize(method="bilinear", antialias=True)``'s new_size×size weights (scale_and_translate)."""
    inverse = size / new_size
    kernel_scale = max(inverse, 1.0)
    sample = (np.arange(new_size) + 0.5) * inverse - 0.5
    weights = np.maximum(0.0, 1.0 - np.abs(sample[None, :] - np.arange(size)[:, None]) / kernel_scale)
    total = weights.sum(axis=0, keepdims=True)
    weights = np.where(np.abs(total) > 1000 * np.finfo(np.float32).eps, weights / np.where(total != 0, total, 1), 0)
    inside = (sample >= -0.5) & (sample <= size - 0.5)
    return np.where(inside[None, :], weights, 0).T


@pytest.mark.parametrize("size, new_size", [(64, 128), (64, 256), (128, 64), (256, 64), (48, 12), (40, 160)])
def test_resize_weights_are_jax_antialiased_bilinear(size, new_size):
    ours = _resize_matrix(size, new_size, torch.float64, torch.device("cpu")).numpy()
    np.testing.assert_allclose(ours, _jax_resize_weights(size, new_size), rtol=0, atol=1e-12)


def _small(stages: int = 2, output_levels: int = 1) -> MaximMultiStage:
    torch.manual_seed(0)
    return MaximMultiStage(
        stages=stages, features=8, block_size_high_res=(4, 4), grid_size_high_res=(4, 4),
        block_size_low_res=(2, 2), grid_size_low_res=(2, 2), output_levels=output_levels,
    )


def test_any_size_restores_to_its_own_size_and_a_sized_input_is_not_padded():
    model = _small().eval()
    assert model.size_multiple == 16  # the 2×2 bottleneck partitions at 1/8 resolution
    with torch.inference_mode():
        odd = torch.rand(1, 3, 37, 50)
        assert model(odd).shape == odd.shape
        sized = torch.rand(2, 3, 32, 64)
        np.testing.assert_array_equal(model(sized).numpy(), model.forward_all(sized)[-1][0].numpy())


def test_stages_chain_and_every_output_trains():
    model = _small(stages=3, output_levels=3).train()
    outputs = model.forward_all(torch.rand(2, 3, 32, 32))
    assert [len(images) for images in outputs] == [3, 3, 3]
    assert [tuple(image.shape[-2:]) for image in outputs[-1]] == [(32, 32), (16, 16), (8, 8)]
    sum(image.square().mean() for images in outputs for image in images).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_later_stages_see_the_earlier_ones():
    """A change of the first stage's weights changes the last stage's output (the stages are chained)."""
    model = _small().eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        before = model(x)
        model.stages[0].attention[0].features.weight.add_(0.1)
        assert not torch.equal(before, model(x))
