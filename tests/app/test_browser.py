"""The web app in a real browser: Debian's headless Chromium, driven by selenium through the system chromedriver
(nothing downloads a browser or a driver). A noisy photo goes in through the page; the file the page downloads
must be a better photo than the one uploaded."""

from __future__ import annotations

import pytest
from app_setup import CLEAN, DENOISE_GAIN_DB, fixed_detector, noisy_photo, start_browser, wait_for

from irconstyle.app import AppServer, create_app
from irconstyle.data.io import read_image
from irconstyle.metrics import psnr


@pytest.fixture
def browser(tmp_path, monkeypatch):
    monkeypatch.setenv("SE_OFFLINE", "true")  # belt and braces: selenium-manager must not go online
    monkeypatch.setenv("IRCONSTYLE_HOME", str(tmp_path / "home"))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = start_browser(downloads)
    driver.downloads = downloads
    yield driver
    driver.quit()


@pytest.fixture
def served(tmp_path):
    with AppServer(create_app(detector=fixed_detector(), work_dir=tmp_path, max_upload_mb=1), port=0) as server:
        yield server.url


def test_a_noisy_photo_restored_through_the_page_downloads_better(browser, served, tmp_path):
    from selenium.webdriver.common.by import By

    noisy = noisy_photo(tmp_path / "noisy.png")
    browser.get(served)
    wait_for(lambda: browser.find_element(By.ID, "limits").text, "the page to load its settings")
    browser.find_element(By.ID, "files").send_keys(str(noisy))
    detected = wait_for(lambda: browser.find_element(By.ID, "detected").text.startswith("Detected")
                        and browser.find_element(By.ID, "detected").text, "the detected degradation")
    assert detected == "Detected: noise (σ ≈ 25.0), 90 % sure."
    assert browser.find_element(By.ID, "task").get_attribute("value") == "denoise"
    assert browser.find_element(By.ID, "model").get_attribute("value") == "denoise"
    browser.find_element(By.ID, "restore").click()
    link = browser.find_element(By.ID, "download")
    wait_for(link.is_displayed, "the restored photo")
    assert link.text == "Download noisy_restored.png (128×128, 8-bit PNG)"
    wait_for(lambda: browser.find_element(By.ID, "after").get_attribute("naturalWidth") == "128", "the after image")
    browser.execute_script("const s = document.getElementById('slider'); s.value = 30;"
                           "s.dispatchEvent(new Event('input'));")
    assert "30%" in browser.find_element(By.ID, "after-layer").value_of_css_property("clip-path")
    link.click()
    target = browser.downloads / "noisy_restored.png"
    wait_for(lambda: target.is_file() and not list(browser.downloads.glob("*.crdownload")), "the download")
    restored, clean = read_image(target), read_image(CLEAN)
    assert restored.shape == clean.shape
    assert psnr(restored, clean) > psnr(read_image(noisy), clean) + DENOISE_GAIN_DB


def test_an_unsure_detection_tells_the_user_to_choose(browser, tmp_path):
    from selenium.webdriver.common.by import By

    unsure = fixed_detector(confidence=0.4)
    with AppServer(create_app(detector=unsure, work_dir=tmp_path, max_upload_mb=1), port=0) as server:
        browser.get(server.url)
        wait_for(lambda: browser.find_element(By.ID, "limits").text, "the page to load its settings")
        browser.find_element(By.ID, "files").send_keys(str(noisy_photo(tmp_path / "noisy.png")))
        detected = wait_for(lambda: browser.find_element(By.ID, "detected").text.startswith("Detected")
                            and browser.find_element(By.ID, "detected").text, "the detected degradation")
    assert detected == ("Detected: noise (σ ≈ 25.0), 40 % sure. Not sure: look at the photo and choose the "
                        "degradation yourself.")


def test_the_page_explains_refused_files_and_keeps_working(browser, served, tmp_path):
    from selenium.webdriver.common.by import By

    (tmp_path / "notes.png").write_text("not a photo")
    (tmp_path / "huge.png").write_bytes(b"\0" * (2 * 2**20))  # over the 1 MB limit: refused before sending
    browser.get(served)
    wait_for(lambda: browser.find_element(By.ID, "limits").text, "the page to load its settings")
    files = browser.find_element(By.ID, "files")
    files.send_keys(f"{tmp_path / 'notes.png'}\n{tmp_path / 'huge.png'}\n{noisy_photo(tmp_path / 'noisy.png')}")
    states = wait_for(lambda: [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#photos .state")]
                      if len(browser.find_elements(By.CSS_SELECTOR, "#photos li:not(.failed) img[src]")) == 1
                      else None, "the three photos to be checked")
    assert states[0] == "notes.png: not an image file (no decoder recognises it)"
    assert states[1] == ("huge.png: 2 MB is over this server's upload limit of 1 MB "
                         "(irconstyle serve --max-upload-mb N raises it)")
    assert states[2] == "128×128, 8-bit"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#photos li.failed")) == 2
