#!/usr/bin/env python
"""Bundle a trained degradation classifier: src/irconstyle/weights/detect.safetensors, with its training record.

    python scripts/export_detect.py runs/detect

Takes the run's final EMA weights (``model_final.safetensors``, BatchNorm statistics recalibrated by the
trainer) and records in the metadata what the file is (``task: detect``) and its training: every stage of the chain
of runs through ``model.init_from``, and the iterations of them all. The
model card (``weights/detect.md``) is written by hand from ``scripts/evaluate_detect.py``'s tables.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import irconstyle
from irconstyle.models.detector import DegradationClassifier
from irconstyle.zoo.pretrained import BUNDLED_FACTS

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "src" / "irconstyle" / "weights" / "detect.safetensors"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_bundled import training_record, training_stages  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the training run's output folder")
    args = parser.parse_args()
    descriptor = irconstyle.load(args.run / "model_final.safetensors")
    model = descriptor.model
    if not isinstance(model, DegradationClassifier):
        raise SystemExit(f"{args.run}: its model is a {type(model).__name__}, not a degradation classifier")
    stages = training_stages(args.run)
    record = training_record(stages)
    irconstyle.save(descriptor.with_facts(**BUNDLED_FACTS), TARGET, metadata={
        "task": "detect",
        "description": "which degradation a photo has: " + ", ".join(model.classes),
        **record,
        "training_photos": stages[-1]["config"]["data"]["train"]["options"]["clean_dirs"],
    })
    hours = " + ".join("?" if stage["hours"] is None else f"{stage['hours']:.2f}" for stage in record["stages"])
    print(f"wrote {TARGET} ({TARGET.stat().st_size / 2**20:.1f} MiB): {record['iterations']} iterations in "
          f"{len(stages)} stage(s), {hours} h of training")


if __name__ == "__main__":
    main()
