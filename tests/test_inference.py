import math

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from irconstyle import inference
from irconstyle.inference import resolve_tile, restore_tensor, tiles
from irconstyle.zoo import ModelDescriptor, describe


class ShiftAndBlur(nn.Module):
    """A small, position-independent stand-in with a receptive field, so tile seams would show."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 5, padding=2, padding_mode="replicate")
        torch.nn.init.constant_(self.conv.weight, 1 / 75)
        torch.nn.init.zeros_(self.conv.bias)

    def forward(self, x):
        return self.conv(x) * 0.9 + 0.05


def stand_in(**facts) -> ModelDescriptor:
    """:class:`ShiftAndBlur` described as a network computing on multiples of 8, as the U-Nets do."""
    return describe(ShiftAndBlur(), size_multiple=8, **facts)


def test_tiles_cover_the_image_exactly():
    covered = torch.zeros(70, 150)
    for top, left, h, w in tiles(70, 150, 32, 8):
        assert h == 32 and w == 32
        covered[top : top + h, left : left + w] += 1
    assert covered.min() >= 1


def test_tiled_matches_whole_image_away_from_seams():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 96, 136)
    model = stand_in()
    whole = restore_tensor(model, x)
    tiled = restore_tensor(model, x, tile=48, tile_overlap=16)
    mse = (whole - tiled).square().mean()
    assert 10 * torch.log10(1 / mse) > 60  # blended seams are far below visible error
    assert tiled.shape == x.shape


def test_self_ensemble_of_an_equivariant_model_is_the_model():
    x = torch.rand(1, 3, 40, 56)
    model = stand_in()
    assert torch.allclose(restore_tensor(model, x, self_ensemble=True), restore_tensor(model, x), atol=1e-6)


def test_progress_announces_the_total_then_reports_every_tile():
    calls = []
    image = torch.rand(1, 3, 64, 64)
    restore_tensor(stand_in(), image, tile=32, tile_overlap=8, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(done, 9) for done in range(10)]
    calls.clear()
    restore_tensor(stand_in(), image, tile=None, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(0, 1), (1, 1)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tile": 30}, "multiple of 8"),
        ({"tile": 32, "tile_overlap": 40}, "tile_overlap"),
        ({"precision": "int8"}, "precision"),
        ({"precision": "fp16"}, "GPUs"),
    ],
)
def test_bad_options_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        restore_tensor(stand_in(), torch.rand(1, 3, 64, 64), **kwargs)


def test_rejects_non_rgb_tensors():
    with pytest.raises(ValueError, match="B×3×H×W"):
        restore_tensor(stand_in(), torch.rand(3, 64, 64))


def test_auto_tile_restores_small_images_whole_and_large_ones_in_tiles(monkeypatch):
    model = stand_in()
    monkeypatch.setattr(inference, "AUTO_TILE_ABOVE_PIXELS", 64 * 64)
    monkeypatch.setattr(inference, "AUTO_TILE", 44)  # rounded up to the model's multiple of 8
    assert resolve_tile(model, "auto", 64, 64) is None
    assert resolve_tile(model, "auto", 64, 65) == 48
    assert resolve_tile(model, 32, 1000, 1000) == 32
    small, large = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 72, 100)
    torch.testing.assert_close(restore_tensor(model, small, tile="auto", tile_overlap=8), restore_tensor(model, small))
    torch.testing.assert_close(restore_tensor(model, large, tile="auto", tile_overlap=8),
                               restore_tensor(model, large, tile=48, tile_overlap=8))


def test_auto_tile_uses_the_native_tile_of_the_weights_at_every_size():
    model = stand_in(native_tile=32)
    assert resolve_tile(model, "auto", 24, 24) == 32  # smaller than a tile: restored whole all the same
    assert resolve_tile(model, "auto", 64, 64) == 32
    assert resolve_tile(model, 48, 64, 64) == 48 and resolve_tile(model, None, 64, 64) is None
    assert resolve_tile(model, 0, 64, 64) is None  # 0 is whole images, as --tile 0 is
    image = torch.rand(1, 3, 72, 100)
    torch.testing.assert_close(restore_tensor(model, image, tile=0), restore_tensor(model, image, tile=None))
    torch.testing.assert_close(restore_tensor(model, image, tile="auto", tile_overlap=8),
                               restore_tensor(model, image, tile=32, tile_overlap=8))
    # The default overlap (32) shrinks to half of a tile smaller than 64; an explicit one is checked as given.
    torch.testing.assert_close(restore_tensor(model, image, tile="auto"),
                               restore_tensor(model, image, tile=32, tile_overlap=16))
    with pytest.raises(ValueError, match=r"tile_overlap must be in \[0, 16\] for tile 32, got 32"):
        restore_tensor(model, image, tile="auto", tile_overlap=32)


def test_bad_tile_values_are_refused():
    for tile in ("big", 12.5, True):
        with pytest.raises(ValueError, match="tile must be"):
            restore_tensor(stand_in(), torch.rand(1, 3, 16, 16), tile=tile)


class CastCounter(TorchDispatchMode):
    """Counts dtype conversions of tensors shaped like ``shape``."""

    def __init__(self, shape):
        super().__init__()
        self.shape, self.count = tuple(shape), 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in (torch.ops.aten._to_copy.default, torch.ops.aten.to.dtype) and tuple(args[0].shape) == self.shape:
            self.count += 1
        return func(*args, **(kwargs or {}))


def test_bf16_casts_the_weights_once_per_restore_not_once_per_tile(monkeypatch):
    monkeypatch.setattr(inference, "cpu_bf16_is_fast", lambda: True)
    model = stand_in()
    image = torch.rand(1, 3, 64, 64)
    with CastCounter(model.model.conv.weight.shape) as counter:
        restored = restore_tensor(model, image, tile=32, tile_overlap=8, precision="bf16")
    assert counter.count == 1  # 9 tiles
    torch.testing.assert_close(restored, restore_tensor(model, image, tile=32, tile_overlap=8), atol=2e-2, rtol=0)


@pytest.mark.parametrize(("speedup", "fast"), [(2.0, True), (0.5, False)])
def test_without_amx_bf16_speed_is_measured_not_assumed(monkeypatch, speedup, fast):
    monkeypatch.setattr(inference, "cpu_has_amx", lambda: False)
    monkeypatch.setattr(inference, "_bf16_matmul_speedup", lambda: speedup)
    inference.cpu_bf16_is_fast.cache_clear()
    assert inference.cpu_bf16_is_fast() is fast
    inference.cpu_bf16_is_fast.cache_clear()


def test_amx_means_fast_bf16_without_measuring(monkeypatch):
    monkeypatch.setattr(inference, "cpu_has_amx", lambda: True)
    monkeypatch.setattr(inference, "_bf16_matmul_speedup", lambda: pytest.fail("measured although AMX is there"))
    inference.cpu_bf16_is_fast.cache_clear()
    assert inference.cpu_bf16_is_fast()
    inference.cpu_bf16_is_fast.cache_clear()


def test_the_bf16_speed_probe_returns_a_ratio_and_leaves_the_random_stream_alone():
    """A ratio of two timings: positive and finite (its size depends on the CPU and its load, so it is not tested)."""
    state = torch.get_rng_state()
    ratio = inference._bf16_matmul_speedup(size=64, repeat=1)
    assert math.isfinite(ratio) and ratio > 0
    assert torch.equal(torch.get_rng_state(), state)


def test_bf16_on_a_cpu_where_it_is_slow_warns_that_it_is_slower(monkeypatch):
    monkeypatch.setattr(inference, "cpu_bf16_is_fast", lambda: False)
    inference._warn_slow_cpu_bf16.cache_clear()
    with pytest.warns(UserWarning, match="slower than fp32"):
        restore_tensor(stand_in(), torch.rand(1, 3, 16, 16), precision="bf16")


def test_a_precision_the_descriptor_does_not_list_is_refused():
    with pytest.raises(ValueError, match="precision bf16 is not supported by this model; use fp32"):
        restore_tensor(stand_in(precisions=("fp32",)), torch.rand(1, 3, 16, 16), precision="bf16")


def test_a_module_from_elsewhere_is_taken_to_accept_any_size_and_a_registered_one_declares_its_multiple():
    assert describe(ShiftAndBlur()).size_multiple == 1
    assert describe(ShiftAndBlur()).build_config is None
    from irconstyle import build_model

    assert describe(build_model("nafnet", width=8, encoder_blocks=[1, 1, 1], bottleneck_blocks=1,
                                decoder_blocks=[1, 1, 1])).size_multiple == 8
