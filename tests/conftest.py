"""Shared test helpers: the authors' reference numbers in ../shared, skipped cleanly where absent."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference" / "official"


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


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


_SMALL_MAXIM_PARTITIONS = dict(
    block_size_high_res=(4, 4), block_size_low_res=(2, 2), grid_size_high_res=(4, 4), grid_size_low_res=(2, 2)
)
# One small configuration per registered architecture, with some arguments off their defaults, so that a reader of
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
