"""Degradations: statistics, physics, determinism, parameter handling and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from irconstyle.data import degradations as D

RNG = np.random.default_rng(0)
PHOTO = np.clip(
    ndimage.gaussian_filter(RNG.random((64, 80, 3)), sigma=(3, 3, 0)) * 2.5 - 0.75, 0.0, 1.0
).astype(np.float32)
GREY = np.full((128, 128, 3), 0.5, np.float32)


def test_gaussian_noise_has_the_requested_sigma_and_is_not_clipped() -> None:
    noisy = D.gaussian_noise(GREY, 25.0, 1)
    assert noisy.dtype == np.float32
    assert abs((noisy - GREY).std() * 255 - 25.0) < 0.5
    assert abs((noisy - GREY).mean()) < 0.01
    dark = D.gaussian_noise(np.zeros_like(GREY), 25.0, 1)
    assert dark.min() < 0  # unclipped, as the benchmarks feed it
    assert D.gaussian_noise(np.zeros_like(GREY), 25.0, 1, clip=True).min() == 0


def test_same_seed_same_result_different_seed_different() -> None:
    np.testing.assert_array_equal(D.gaussian_noise(PHOTO, 15, 7), D.gaussian_noise(PHOTO, 15, np.random.default_rng(7)))
    assert not np.array_equal(D.gaussian_noise(PHOTO, 15, 7), D.gaussian_noise(PHOTO, 15, 8))


def test_poisson_gaussian_variance_follows_signal() -> None:
    image = np.concatenate([np.full((200, 100, 3), 0.1), np.full((200, 100, 3), 0.8)], axis=1).astype(np.float32)
    noisy = D.poisson_gaussian_noise(image, peak=200.0, sigma=2.0, rng=0, clip=False)
    for columns, level in ((slice(0, 100), 0.1), (slice(100, 200), 0.8)):
        residual = noisy[:, columns] - level
        expected = level / 200.0 + (2.0 / 255) ** 2
        assert abs(residual.mean()) < 0.005
        assert abs(residual.var() / expected - 1) < 0.1
    with pytest.raises(ValueError, match="peak must be > 0"):
        D.poisson_gaussian_noise(image, peak=0.0, sigma=1.0, rng=0)


def test_streak_kernel_shape_follows_angle_and_length() -> None:
    vertical = D.streak_kernel(length=21, width=1.5, angle=0.0)
    assert vertical.max() == pytest.approx(1.0)
    rows, cols = np.nonzero(vertical > 0.5)
    assert np.ptp(rows) > 4 * np.ptp(cols) and 16 <= np.ptp(rows) <= 22
    horizontal = D.streak_kernel(length=21, width=1.5, angle=90.0)
    rows, cols = np.nonzero(horizontal > 0.5)
    assert np.ptp(cols) > 4 * np.ptp(rows)


def test_rain_brightens_within_range_and_scales_with_density() -> None:
    light = D.rain_streaks(PHOTO, 3, layers=1, density=0.002, length=15, width=1.5, opacity=0.6)
    heavy = D.rain_streaks(PHOTO, 3, layers=3, density=0.006, length=30, width=2.5, opacity=0.8)
    assert light.shape == PHOTO.shape and light.dtype == np.float32
    assert np.all(light >= PHOTO - 1e-6) and np.all(heavy <= 1.0)
    assert 0 < (light - PHOTO).mean() < (heavy - PHOTO).mean()
    np.testing.assert_array_equal(D.rain_layer((32, 32), 0, length=9, width=1, angle=0, density=0.0), 0)
    with pytest.raises(ValueError, match="layers must be >= 1"):
        D.rain_streaks(PHOTO, 0, layers=0)


def test_synthetic_depth_is_normalised_and_recedes_upwards() -> None:
    depth = D.synthetic_depth(np.full((96, 64, 3), 0.3, np.float32), 0)
    assert depth.shape == (96, 64) and depth.min() == pytest.approx(0) and depth.max() == pytest.approx(1)
    assert depth[:20].mean() > depth[-20:].mean() + 0.3


def test_haze_follows_the_scattering_model() -> None:
    depth = np.zeros(PHOTO.shape[:2])
    np.testing.assert_allclose(D.haze(PHOTO, 0.1, 0.9, depth), PHOTO, atol=1e-6)
    far = D.haze(PHOTO, 0.2, 0.85, np.full(PHOTO.shape[:2], 1e3))
    np.testing.assert_allclose(far, 0.85, atol=1e-6)
    depth = np.full(PHOTO.shape[:2], 5.0)
    transmission = np.exp(-0.1 * 5.0)
    expected = PHOTO * transmission + np.array([0.8, 0.9, 1.0]) * (1 - transmission)
    np.testing.assert_allclose(D.haze(PHOTO, 0.1, [0.8, 0.9, 1.0], depth), expected, atol=1e-6)


@pytest.mark.parametrize(
    ("depth", "airlight", "message"),
    [(np.zeros((3, 3)), 0.9, "depth must be H×W"), (-np.ones((64, 80)), 0.9, "depth must be finite and >= 0"),
     (np.ones((64, 80)), 1.5, "airlight must be in")],
)
def test_haze_rejects_bad_inputs(depth: np.ndarray, airlight: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        D.haze(PHOTO, 0.1, airlight, depth)


def test_camera_shake_kernel_is_normalised_centred_and_spans_length() -> None:
    for seed in range(5):
        kernel = D.camera_shake_kernel(21.0, seed)
        assert kernel.ndim == 2 and kernel.shape[0] == kernel.shape[1] and kernel.shape[0] % 2 == 1
        assert kernel.min() >= 0 and kernel.sum() == pytest.approx(1.0)
        rows, cols = np.indices(kernel.shape)
        centre = kernel.shape[0] // 2
        assert abs((rows * kernel).sum() - centre) < 0.5 and abs((cols * kernel).sum() - centre) < 0.5
        support_rows, support_cols = np.nonzero(kernel > 0)
        assert 19 <= max(np.ptp(support_rows), np.ptp(support_cols)) <= 22
    np.testing.assert_array_equal(D.camera_shake_kernel(15.0, 4), D.camera_shake_kernel(15.0, 4))
    np.testing.assert_array_equal(D.camera_shake_kernel(0.5, 0), [[1.0]])


def test_convolve_matches_direct_convolution_with_reflected_borders() -> None:
    kernel = RNG.random((5, 3))
    ours = D.convolve(PHOTO, kernel)
    for channel in range(3):
        expected = ndimage.convolve(PHOTO[..., channel].astype(np.float64), kernel, mode="mirror")
        np.testing.assert_allclose(ours[..., channel], expected, atol=1e-5)
    with pytest.raises(ValueError, match="odd sides"):
        D.convolve(PHOTO, np.ones((4, 3)))


def test_blur_keeps_flat_images_and_smooths_detail() -> None:
    np.testing.assert_allclose(D.blur(GREY, D.camera_shake_kernel(9, 0)), GREY, atol=1e-6)
    assert D.defocus_blur(PHOTO, 2.0).std() < PHOTO.std()
    np.testing.assert_allclose(D.defocus_blur(PHOTO, 0.0), PHOTO, atol=1e-6)
    with pytest.raises(ValueError, match="summing to 1"):
        D.blur(PHOTO, np.ones((3, 3)))


def test_jpeg_quality_controls_error() -> None:
    fine = np.abs(D.jpeg_compress(PHOTO, 95) - PHOTO).mean()
    coarse = np.abs(D.jpeg_compress(PHOTO, 10) - PHOTO).mean()
    assert fine < coarse
    with pytest.raises(ValueError, match="quality must be in 1..100"):
        D.jpeg_compress(PHOTO, 0)


@pytest.mark.parametrize("bad", [np.zeros((8, 8)), np.zeros((8, 8, 4), np.float32), np.zeros((8, 8, 3), np.uint8)])
def test_images_must_be_float_hw3(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="H×W×3|float pixels"):
        D.gaussian_noise(bad, 10, 0)


def test_rng_must_be_a_generator_or_int() -> None:
    with pytest.raises(TypeError, match="numpy Generator or an int"):
        D.gaussian_noise(PHOTO, 10, np.random.RandomState(0))
    with pytest.raises(ValueError, match="sigma must be a finite number >= 0"):
        D.gaussian_noise(PHOTO, -1, 0)


def test_named_levels_give_the_benchmark_sigmas() -> None:
    assert [D.sample_parameters("denoise", name, 0)["sigma"] for name in ("low", "medium", "high")] == [15, 25, 50]


def test_parameter_specs_fixed_range_and_choice() -> None:
    ranged = [D.sample_parameters("denoise", {"sigma": (0, 50)}, seed)["sigma"] for seed in range(20)]
    assert all(0 <= sigma <= 50 for sigma in ranged) and len(set(ranged)) == 20
    assert D.sample_parameters("denoise", {"sigma": {"min": 10, "max": 10}}, 0)["sigma"] == 10
    chosen = {D.sample_parameters("denoise", {"sigma": [15, 25, 50]}, seed)["sigma"] for seed in range(30)}
    assert chosen == {15, 25, 50}
    assert {D.sample_parameters("denoise", {"sigma": {"choice": [5, 7]}}, s)["sigma"] for s in range(20)} == {5, 7}
    mixture = {"choice": [{"min": 0, "max": 25}, {"min": 0, "max": 50}]}
    mixed = np.array([D.sample_parameters("denoise", {"sigma": mixture}, s)["sigma"] for s in range(400)])
    assert mixed.min() >= 0 and mixed.max() <= 50 and 0.68 < (mixed < 25).mean() < 0.82  # 3/4 expected
    layers = {D.sample_parameters("derain", {"level": "high", "layers": (2, 3)}, s)["layers"] for s in range(20)}
    assert layers == {2, 3}
    levels = {D.sample_parameters("denoise", ["low", "high"], seed)["level"] for seed in range(20)}
    assert levels == {"low", "high"}
    high = D.sample_parameters("derain", {"level": "high", "angle": 0}, 0)
    assert high["level"] == "high" and high["angle"] == 0 and high["layers"] in (3, 4)


def test_deblur_kind_selects_its_parameters() -> None:
    motion = D.sample_parameters("deblur", "medium", 0)
    assert "length" in motion and "defocus_sigma" not in motion
    defocus = D.sample_parameters("deblur", {"kind": "defocus"}, 0)
    assert "defocus_sigma" in defocus and "length" not in defocus
    with pytest.raises(ValueError, match="kind must be 'motion' or 'defocus'"):
        D.sample_parameters("deblur", {"kind": "zoom"}, 0)


@pytest.mark.parametrize(
    ("task", "level", "message"),
    [
        ("upscale", "low", "unknown task"),
        ("denoise", "extreme", "unknown level"),
        ("denoise", {"sgima": 3}, "unknown denoise parameter"),
        ("denoise", {"sigma": (50, 0)}, "low <= high"),
        ("denoise", {"sigma": {"lo": 1}}, "must be {min, max} or {choice}"),
        ("denoise", {"sigma": []}, "empty list"),
        ("denoise", {"sigma": {1, 2}}, "cannot use"),
        ("denoise", [], "must name levels"),
    ],
)
def test_bad_levels_and_parameters(task: str, level, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        D.sample_parameters(task, level, 0)


@pytest.mark.parametrize("task", D.TASKS)
@pytest.mark.parametrize("level", ["low", "medium", "high"])
def test_degrade_every_task_and_level(task: str, level: str) -> None:
    result = D.degrade(PHOTO, task, level, 5)
    assert result.image.shape == PHOTO.shape and result.image.dtype == np.float32
    assert result.parameters["level"] == level
    assert np.abs(result.image - PHOTO).mean() > 1e-3
    np.testing.assert_array_equal(result.image, D.degrade(PHOTO, task, level, 5).image)


def test_stronger_levels_degrade_more() -> None:
    for task in D.TASKS:
        errors = [np.abs(D.degrade(PHOTO, task, level, 1).image - PHOTO).mean() for level in ("low", "high")]
        assert errors[0] < errors[1], task


def test_depth_map_and_jpeg_options() -> None:
    depth = np.full(PHOTO.shape[:2], 4.0)
    hazy = D.degrade(PHOTO, "dehaze", {"beta": 0.1, "airlight": 1.0}, 0, depth=depth).image
    np.testing.assert_allclose(hazy, D.haze(PHOTO, 0.1, 1.0, depth), atol=1e-6)
    with pytest.raises(ValueError, match="only applies to dehaze"):
        D.degrade(PHOTO, "denoise", "low", 0, depth=depth)
    compressed = D.degrade(PHOTO, "denoise", {"sigma": 0, "jpeg_quality": 20}, 0)
    np.testing.assert_allclose(compressed.image, D.jpeg_compress(PHOTO, 20), atol=1e-6)
    assert compressed.parameters["jpeg_quality"] == 20


def test_quantize_bits_stores_the_degraded_image_as_an_integer_file_would():
    from irconstyle.data.degradations import degrade, quantize

    image = np.random.default_rng(0).random((32, 32, 3), dtype=np.float32)
    noisy = degrade(image, "denoise", {"sigma": 30.0, "quantize_bits": 8}, 3).image
    assert noisy.min() >= 0 and noisy.max() <= 1
    np.testing.assert_allclose(noisy * 255, np.round(noisy * 255), atol=1e-4)
    unquantized = degrade(image, "denoise", {"sigma": 30.0}, 3).image
    np.testing.assert_allclose(noisy, quantize(unquantized, 8), atol=1e-6)
    with pytest.raises(ValueError, match="1..16"):
        quantize(image, 0)


def test_a_mapping_may_draw_its_base_level_from_a_list():
    drawn = {D.sample_parameters("derain", {"level": ["low", "high"], "quantize_bits": 8}, seed)["level"]
             for seed in range(20)}
    assert drawn == {"low", "high"}
    with pytest.raises(ValueError, match="empty"):
        D.sample_parameters("derain", {"level": []}, 0)
