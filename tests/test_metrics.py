"""PSNR/SSIM against hand-computed cases and scikit-image with matching settings; protocol presets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from irconstyle import metrics

RNG = np.random.default_rng(0)
REFERENCE = (np.clip(np.cumsum(RNG.normal(0, 9, (48, 56, 3)), axis=1), -120, 120) + 128).astype(np.uint8)
DISTORTED = np.clip(REFERENCE + RNG.normal(0, 12, REFERENCE.shape), 0, 255).astype(np.uint8)


def _skimage_ssim(img: np.ndarray, ref: np.ndarray, **kwargs) -> float:
    """scikit-image configured like BasicSR: Gaussian σ 1.5 (11×11), population covariance, peak 255."""
    return structural_similarity(
        img, ref, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, **kwargs
    )


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).float() / 255.0


def test_psnr_hand_computed() -> None:
    brighter = REFERENCE.astype(np.int16) + 1
    assert np.all(brighter <= 255)
    assert metrics.psnr(brighter.astype(np.uint8), REFERENCE) == pytest.approx(10 * math.log10(255**2))
    assert metrics.psnr(REFERENCE, REFERENCE) == math.inf
    # Y of a constant grey offset by 2 in every channel: ΔY = 2·(65.481 + 128.553 + 24.966)/255 = 2·219/255
    grey, lighter = np.full((16, 16, 3), 100, np.uint8), np.full((16, 16, 3), 102, np.uint8)
    expected = 10 * math.log10(255**2 / (2 * 219 / 255) ** 2)
    assert metrics.psnr(lighter, grey, y_channel=True) == pytest.approx(expected)


def test_ssim_hand_computed() -> None:
    assert metrics.ssim(REFERENCE, REFERENCE) == pytest.approx(1.0)
    # flat images: variances vanish, so SSIM = (2·μ1·μ2 + C1) / (μ1² + μ2² + C1)
    first, second = np.full((20, 20, 3), 90, np.uint8), np.full((20, 20, 3), 130, np.uint8)
    c1 = (0.01 * 255) ** 2
    assert metrics.ssim(first, second) == pytest.approx((2 * 90 * 130 + c1) / (90**2 + 130**2 + c1))


def test_matches_scikit_image_on_rgb_and_y() -> None:
    assert metrics.psnr(DISTORTED, REFERENCE) == pytest.approx(peak_signal_noise_ratio(REFERENCE, DISTORTED))
    expected = _skimage_ssim(DISTORTED, REFERENCE, channel_axis=2)
    assert metrics.ssim(DISTORTED, REFERENCE) == pytest.approx(expected, abs=1e-10)
    y_ref, y_img = rgb2ycbcr(REFERENCE)[..., 0], rgb2ycbcr(DISTORTED)[..., 0]
    assert metrics.psnr(DISTORTED, REFERENCE, y_channel=True) == pytest.approx(
        peak_signal_noise_ratio(y_ref, y_img, data_range=255)
    )
    assert metrics.ssim(DISTORTED, REFERENCE, y_channel=True) == pytest.approx(
        _skimage_ssim(y_img, y_ref), abs=1e-10
    )


def test_crop_border_equals_cropping_first() -> None:
    cropped = (DISTORTED[4:-4, 4:-4], REFERENCE[4:-4, 4:-4])
    assert metrics.psnr(DISTORTED, REFERENCE, crop_border=4) == pytest.approx(metrics.psnr(*cropped))
    assert metrics.ssim(DISTORTED, REFERENCE, crop_border=4) == pytest.approx(metrics.ssim(*cropped))


def test_batched_tensors_score_each_image_like_the_arrays() -> None:
    batch = torch.stack([_tensor(DISTORTED), _tensor(REFERENCE)])
    references = torch.stack([_tensor(REFERENCE)] * 2)
    for y_channel in (False, True):
        psnr = metrics.psnr(batch, references, y_channel=y_channel, data_range=1.0)
        ssim = metrics.ssim(batch, references, y_channel=y_channel, data_range=1.0)
        assert psnr.shape == (2,) and psnr.dtype == torch.float64
        assert psnr[0].item() == pytest.approx(metrics.psnr(DISTORTED, REFERENCE, y_channel=y_channel), abs=1e-5)
        assert psnr[1].item() == math.inf
        assert ssim[0].item() == pytest.approx(metrics.ssim(DISTORTED, REFERENCE, y_channel=y_channel), abs=1e-5)
        assert ssim[1].item() == pytest.approx(1.0)
    single = metrics.psnr(_tensor(DISTORTED), _tensor(REFERENCE), data_range=1.0)
    assert single.shape == (1,)


@pytest.mark.parametrize(
    ("img", "ref", "kwargs", "error", "message"),
    [
        (DISTORTED[:-1], REFERENCE, {}, ValueError, "shapes differ"),
        (DISTORTED[..., 0], REFERENCE[..., 0], {}, ValueError, "H×W×3"),
        (DISTORTED / 255.0, REFERENCE / 255.0, {}, ValueError, "float64 images have no implied range"),
        (_tensor(DISTORTED), _tensor(REFERENCE), {}, ValueError, "pass data_range=1.0"),
        (DISTORTED.astype(np.int64), REFERENCE.astype(np.int64), {}, ValueError, "no implied range"),
        (DISTORTED, REFERENCE, {"data_range": 1.0}, ValueError, "uint8 images span 0–255; data_range=1"),
        (DISTORTED / 255.0, REFERENCE, {"data_range": 1.0}, ValueError, "dtypes differ"),
        (DISTORTED / 255.0, REFERENCE / 255.0, {"data_range": 0.0}, ValueError, "data_range must be > 0"),
        (DISTORTED, REFERENCE, {"crop_border": -1}, ValueError, "crop_border must be >= 0"),
        (DISTORTED, REFERENCE, {"crop_border": 28}, ValueError, "nothing left"),
        (_tensor(DISTORTED), REFERENCE, {}, TypeError, "numpy arrays or both tensors"),
        (torch.zeros(2, 1, 3, 16, 16), torch.zeros(2, 1, 3, 16, 16), {}, ValueError, "B×3×H×W"),
    ],
)
def test_bad_inputs(img, ref, kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        metrics.psnr(img, ref, **kwargs)


@pytest.mark.parametrize("score", [metrics.psnr, metrics.ssim])
@pytest.mark.parametrize("y_channel", [False, True])
def test_every_stated_range_scores_like_uint8(score, y_channel) -> None:
    # float64 rescaling rounds each pixel by a few ulps, far inside a 1e-12 relative tolerance
    expected = score(DISTORTED, REFERENCE, y_channel=y_channel)
    unit = (DISTORTED / 255.0, REFERENCE / 255.0)
    assert score(*unit, y_channel=y_channel, data_range=1.0) == pytest.approx(expected, rel=1e-12)
    assert score(*(x * 255.0 for x in unit), y_channel=y_channel, data_range=255.0) == pytest.approx(
        expected, rel=1e-12
    )
    wide = tuple(x.astype(np.uint16) * 257 for x in (DISTORTED, REFERENCE))  # 255 · 257 = 65535
    assert score(*wide, y_channel=y_channel) == pytest.approx(expected, rel=1e-12)
    assert score(DISTORTED, REFERENCE, y_channel=y_channel, data_range=255) == expected


def test_ssim_needs_a_full_window() -> None:
    with pytest.raises(ValueError, match="at least 11×11"):
        metrics.ssim(DISTORTED[:10], REFERENCE[:10])


def test_noise_protocol_reproduces_the_reference_recipe() -> None:
    protocol = metrics.get_protocol("CBSD68-sigma25")
    clean = REFERENCE / 255.0
    np.random.seed(0)  # what the Restormer / KAIR test scripts do before every image
    expected = clean + np.random.normal(0, 25 / 255.0, clean.shape)
    noisy = protocol.noisy_input(clean)
    np.testing.assert_array_equal(noisy, expected)
    assert noisy.dtype == np.float64 and noisy.min() < 0  # neither clipped nor quantised
    text = protocol.describe()
    assert "RGB" in text and "N(0, 25/255)" in text and "seed 0 per image" in text
    with pytest.raises(ValueError, match="no synthetic noise"):
        metrics.get_protocol("rain100h").noisy_input(clean)


def test_protocols_score_in_their_colour_space() -> None:
    derain = metrics.get_protocol("rain100h")
    assert derain.y_channel and "Y (BT.601 studio range)" in derain.describe()
    scores = derain.score(DISTORTED, REFERENCE)
    assert scores["psnr"] == metrics.psnr(DISTORTED, REFERENCE, y_channel=True)
    assert scores["ssim"] == metrics.ssim(DISTORTED, REFERENCE, y_channel=True)
    for name in ("sots-outdoor", "gopro", "hide", "realblur-j", "realblur-r"):
        assert not metrics.get_protocol(name).y_channel
    assert set(metrics.get_protocol("urban100-sigma50").score(DISTORTED, REFERENCE)) == {"psnr", "ssim"}
    assert set(metrics.Protocol(name="psnr-only", y_channel=False, report_ssim=False).score(DISTORTED, REFERENCE)) == {
        "psnr"
    }
    with pytest.raises(ValueError, match="unknown protocol 'set5'"):
        metrics.get_protocol("set5")


def test_restoration_scores_are_the_four_numbers_of_eval_and_validation_on_arrays_and_tensors():
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    restored = np.clip(reference.astype(int) + rng.integers(-9, 10, reference.shape), 0, 255).astype(np.uint8)
    scores = metrics.restoration_scores(restored, reference, data_range=255.0)
    assert list(scores) == list(metrics.RESTORATION_METRICS)
    assert scores["psnr_y"] == metrics.psnr(restored, reference, y_channel=True)
    assert scores["ssim_rgb"] == metrics.ssim(restored, reference)
    as_tensor = lambda image: torch.from_numpy(image.astype(np.float64) / 255).permute(2, 0, 1)[None]  # noqa: E731
    batched = metrics.restoration_scores(as_tensor(restored), as_tensor(reference), data_range=1.0)
    for name, value in scores.items():
        assert float(batched[name][0]) == pytest.approx(value, abs=1e-9)
