#!/usr/bin/env python
"""Bundle a trained degradation classifier: src/irconstyle/weights/detect.safetensors, with its training record.

    python scripts/export_detect.py runs/detect

Takes the run's final EMA weights (``model_final.safetensors``, BatchNorm statistics recalibrated by the
trainer) and records in the metadata what the file is (``task: detect``), the config and the iterations. The
model card (``weights/detect.md``) is written by hand from ``scripts/evaluate_detect.py``'s tables.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

import irconstyle
from irconstyle.models.detector import DegradationClassifier

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "src" / "irconstyle" / "weights" / "detect.safetensors"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_bundled import training_summary  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the training run's output folder")
    args = parser.parse_args()
    descriptor = irconstyle.load(args.run / "model_final.safetensors")
    model = descriptor.model
    if not isinstance(model, DegradationClassifier):
        raise SystemExit(f"{args.run}: its model is a {type(model).__name__}, not a degradation classifier")
    config = yaml.safe_load((args.run / "config.yaml").read_text())
    summary = training_summary(args.run)
    irconstyle.save(descriptor, TARGET, metadata={
        "task": "detect",
        "description": "which degradation a photo has: " + ", ".join(model.classes),
        "config": config["name"],
        "iterations": summary["iterations"],
        "training_photos": config["data"]["train"]["options"]["clean_dirs"],
    })
    print(f"wrote {TARGET} ({TARGET.stat().st_size / 2**20:.1f} MiB): {summary['iterations']} iterations, "
          f"{summary['hours']:.2f} h of training")


if __name__ == "__main__":
    main()
