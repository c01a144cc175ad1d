#!/usr/bin/env bash
# Create .venv (CPU torch pinned for this machine), install irconstyle with its test extras, run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/pip install -q --disable-pip-version-check "torch==2.13.0"
.venv/bin/pip install -q --disable-pip-version-check -e ".[test]"
.venv/bin/ruff check src tests benchmarks
exec .venv/bin/python -m pytest -q "$@"
