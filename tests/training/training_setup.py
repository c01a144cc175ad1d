"""Tiny training configs on the sample photos in tests/assets, fast enough for the default suite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from irconstyle.training.config import TrainingConfig, apply_overrides, config_from_dict

REPO = Path(__file__).resolve().parents[2]
PHOTOS = REPO / "tests" / "assets" / "photos"
CONFIG_DIR = REPO / "configs"
# Every shipped config fully resolved, written by scripts/snapshot_configs.py (and only by it).
RESOLVED_CONFIGS = Path(__file__).with_name("resolved_configs.json")

TINY_MODELS: dict[str, dict[str, Any]] = {
    "constyle_nafnet": {"width": 8, "encoder_blocks": [1, 1, 1], "bottleneck_blocks": 1, "decoder_blocks": [1, 1, 1]},
    "constyle_restormer": {
        "width": 8, "encoder_blocks": [1, 1, 1], "bottleneck_blocks": 1, "decoder_blocks": [1, 1, 1],
        "refinement_blocks": 1, "heads": [1, 1, 1, 1],
    },
    "constyle_maxim": {
        "features": 8, "bottleneck_blocks": 1, "block_size_high_res": [4, 4], "block_size_low_res": [2, 2],
        "grid_size_high_res": [4, 4], "grid_size_low_res": [2, 2],
    },
    "constyle_kbnet": {"width": 8, "encoder_blocks": [1, 1, 1], "bottleneck_blocks": 1, "decoder_blocks": [1, 1, 1]},
    "nafnet": {"width": 8, "encoder_blocks": [1, 1], "bottleneck_blocks": 1, "decoder_blocks": [1, 1]},
    "kbnet": {"width": 8, "encoder_blocks": [1, 1], "bottleneck_blocks": 1, "decoder_blocks": [1, 1]},
    "restormer": {"width": 8, "level_blocks": [1, 1, 1, 1], "refinement_blocks": 1, "heads": [1, 1, 1, 1]},
    "maxim": {
        "features": 8, "block_size_high_res": [4, 4], "block_size_low_res": [2, 2],
        "grid_size_high_res": [4, 4], "grid_size_low_res": [2, 2],
    },
}


def tiny_raw_config(model: str = "constyle_nafnet", **overrides: Any) -> dict[str, Any]:
    """A plain-dict config: 32-pixel denoising patches of the sample photos, checkpoints every 2 iterations."""
    raw = {
        "name": f"tiny-{model}",
        "seed": 3,
        "threads": 1,
        "model": {"name": model, "options": TINY_MODELS[model]},
        "data": {
            "train": {
                "dataset": "degraded",
                "options": {"clean_dirs": str(PHOTOS / "train"), "task": "denoise", "level": ["low", "high"]},
                "batch_size": 2,
                "patch_size": 32,
            },
        },
        "train": {
            "total_iters": 4,
            "schedule": {"periods": [3, 3], "restart_weights": [1, 1], "eta_mins": [3e-4, 1e-6]},
            "ema": {"decay": 0.5},
        },
        "checkpoint": {"every": 2, "keep_last": 2},
        "log": {"every": 2, "tensorboard": False},
    }
    if model.startswith("constyle"):
        raw["model"]["constyle"] = {"queue_size": 16}
    return apply_overrides(raw, [f"{key}={value}" for key, value in overrides.items()])


def tiny_config(model: str = "constyle_nafnet", **overrides: Any) -> TrainingConfig:
    return config_from_dict(tiny_raw_config(model, **overrides))




def shipped_configs() -> list[Path]:
    """Every config in configs/ a user trains, not the partial bases they include (files in ``_base/`` folders)."""
    return sorted(path for path in CONFIG_DIR.rglob("*.yaml") if "_base" not in path.relative_to(CONFIG_DIR).parts)
