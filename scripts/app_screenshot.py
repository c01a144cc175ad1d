"""Take docs/app.png: the web app after restoring the bundled sample photo with the bundled denoiser, the
before/after slider in the middle. Uses the detector the package has (`irconstyle.detect`, where installed).

    PYTHONPATH=src python scripts/app_screenshot.py [--output docs/app.png]

Needs the test extra (selenium) and Debian's chromium + chromium-driver, as tests/app/test_browser.py does.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from importlib import resources
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "app"))

from app_setup import start_browser, wait_for  # noqa: E402

from irconstyle.app import AppServer, create_app  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(REPO / "docs" / "app.png"))
    args = parser.parse_args()
    from selenium.webdriver.common.by import By

    sample = Path(str(resources.files("irconstyle") / "assets" / "sample_noisy.png"))
    with tempfile.TemporaryDirectory() as folder, AppServer(create_app(work_dir=folder), port=0) as server:
        browser = start_browser(Path(folder), width=1120, height=960)
        try:
            browser.get(server.url)
            wait_for(lambda: browser.find_element(By.ID, "limits").text, "the page")
            browser.find_element(By.ID, "files").send_keys(str(sample))
            wait_for(lambda: not browser.find_element(By.ID, "restore").get_attribute("disabled"), "the upload")
            browser.find_element(By.ID, "restore").click()
            wait_for(browser.find_element(By.ID, "download").is_displayed, "the restore")
            wait_for(lambda: browser.find_element(By.ID, "after").get_attribute("naturalWidth") != "0", "the result")
            browser.save_screenshot(args.output)
        finally:
            browser.quit()
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
