#!/usr/bin/env bash
# The main job: set up .venv (CPU torch pinned for this machine), then restore the bundled sample photo (a held-out
# photo with σ = 25 noise, stored as an 8-bit PNG) with the default denoiser. Writes outputs/demo/sample_noisy.png
# (restored) and outputs/demo/sample_noisy_compare.png (input | restored).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/pip install -q --disable-pip-version-check "torch==2.13.0"
.venv/bin/pip install -q --disable-pip-version-check -e .
exec .venv/bin/irconstyle restore src/irconstyle/assets/sample_noisy.png --task denoise -o outputs/demo --compare "$@"
