"""What the web app's tests (and scripts/app_screenshot.py) share: a held-out photo, a noisy version of it, a
deterministic test double of the degradation detector, and Debian's headless Chromium driven by selenium."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from irconstyle.data.degradations import degrade
from irconstyle.data.io import float_to_image, image_to_float, read_image, write_image

CLEAN = Path(__file__).resolve().parents[1] / "assets" / "photos" / "val" / "chelsea.png"
DENOISE_GAIN_DB = 3.0  # what the bundled denoiser gains at σ 25 on this photo, with margin (test_bundled_models)


@dataclass(frozen=True)
class FakeDetection:
    task: str
    confidence: float
    scores: dict = field(default_factory=dict)
    level: float | None = None


def fixed_detector(task: str = "denoise", level: float | None = 25.0, confidence: float = 0.9):
    """A detector that always answers ``task`` (``confidence`` sure) and records the shapes it was shown."""
    calls = []

    def detect(image: np.ndarray) -> FakeDetection:
        calls.append(image.shape)
        return FakeDetection(task, confidence, {task: confidence, "none": round(1.0 - confidence, 6)}, level)

    detect.calls = calls
    return detect


def noisy_photo(path: Path, bits: int = 8) -> Path:
    """The held-out photo with σ 25 Gaussian noise (seed 0), saved at ``bits`` bits."""
    clean = image_to_float(read_image(CLEAN))
    write_image(path, float_to_image(degrade(clean, "denoise", {"sigma": 25.0}, 0).image, bits))
    return path


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WAIT_S = 120


def _browser_paths() -> tuple[str, str]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        reason = (f"needs Chromium and its driver ({', '.join(missing)} not found): "
                  "apt-get install chromium chromium-driver")
        if os.environ.get("IRCONSTYLE_REQUIRE_SHARED"):
            pytest.fail(f"IRCONSTYLE_REQUIRE_SHARED is set but the browser test {reason}")
        pytest.skip(f"the browser test {reason}")
    return CHROMIUM, CHROMEDRIVER


def start_browser(download_dir: Path, *, width: int = 1280, height: int = 900):
    """Headless Chromium saving downloads into ``download_dir``; selenium-manager is never asked for anything."""
    chromium, chromedriver = _browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={width},{height}", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(download_dir), "download.prompt_for_download": False,
        "safebrowsing.enabled": False,
    })
    return webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)


def wait_for(condition, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
