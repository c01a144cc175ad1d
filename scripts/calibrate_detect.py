#!/usr/bin/env python
"""Fit the degradation classifier's class bias on labelled photos, and write a classifier file that carries it.

    python scripts/calibrate_detect.py [--photos FOLDER…] [--model FILE] [--cache probs.json] [--output FILE]

The network under-calls some classes (``none`` above all: a clean photo has no feature of its own, only the
absence of the others'). A per-class offset to the log of the averaged view probabilities
(``DegradationClassifier(class_bias=…)``, applied by ``irconstyle.detect``) corrects that without retraining:
the offsets that minimise the cross-entropy of the calibrated decision over every case of
``scripts/evaluate_detect.py``'s own generators on the photos, every class weighted equally (a convex fit, so
there is nothing to tune).

The photos must be ones the network did not train on: on its training photos it is confident about ``none``
where it is not on others, so offsets fitted there barely move. The default is the held-out split
(``data/photos/val``), which makes its scores afterwards in-sample; the check photos and the other generators
are what measure the result.

``--output`` writes the classifier again with the offsets in its architecture arguments and what they were
fitted on in its metadata (the weights unchanged), for ``irconstyle.detect(image, model=FILE)`` or
``irconstyle detect --model FILE``. The bundled classifier carries no offsets: fitted on the held-out photos,
they did not carry over to the check photos (docs/experiments/detect.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import torch

import irconstyle
from irconstyle.data.datasets import list_images
from irconstyle.detect import bundled_detector_path, load_detector, view_probabilities

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT = ROOT / "data" / "photos" / "val"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate_detect import degraded_cases, ours  # noqa: E402


def averaged_probabilities(classifier, photos: list[Path]) -> list[dict]:
    """One record per (photo, case): the true class and the views' averaged probabilities, before any bias.
    Seeded apart from evaluate_detect's (photo, case) seeds, so the degradations differ from those it scores."""
    records, cases, start = [], ours(), time.perf_counter()
    for path, name, truth, degraded in degraded_cases(cases, photos, salt=(zlib.crc32(b"calibrate"),)):
        probabilities, _ = view_probabilities(degraded, classifier)
        where = path.resolve()
        records.append({"photo": str(where.relative_to(ROOT) if where.is_relative_to(ROOT) else where),
                        "case": name, "truth": truth, "probabilities": probabilities.mean(dim=0).tolist()})
        if len(records) % len(cases) == 0:  # a photo's last case
            print(f"{len(records) // len(cases)}/{len(photos)} photos, {time.perf_counter() - start:.0f} s",
                  file=sys.stderr)
    return records


def fit_bias(log_probabilities: torch.Tensor, labels: torch.Tensor, classes: int) -> torch.Tensor:
    """The offsets b minimising the class-balanced cross-entropy of softmax(log p + b); b sums to zero."""
    counts = torch.bincount(labels, minlength=classes).double()
    if (counts == 0).any():
        raise SystemExit("calibrate_detect: every class needs examples to be calibrated")
    weights = (1.0 / counts)[labels]
    free = torch.zeros(classes - 1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([free], max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14,
                                  line_search_fn="strong_wolfe")

    def bias() -> torch.Tensor:
        return torch.cat([free, -free.sum()[None]])

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = (weights * torch.nn.functional.cross_entropy(log_probabilities + bias(), labels,
                                                             reduction="none")).sum() / classes
        loss.backward()
        return loss

    optimiser.step(closure)
    return bias().detach()


def balanced_accuracy(scores: torch.Tensor, labels: torch.Tensor, classes: int) -> tuple[float, list[float]]:
    predicted = scores.argmax(dim=1)
    recalls = [float((predicted[labels == k] == k).double().mean()) for k in range(classes)]
    return float(np.mean(recalls)), recalls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, nargs="+", default=[HELD_OUT],
                        help="folders of clean photos the classifier did not train on (default: data/photos/val)")
    parser.add_argument("--model", type=Path, default=bundled_detector_path(),
                        help="the classifier file (default: the bundled one)")
    parser.add_argument("--cache", type=Path, help="keep the averaged probabilities in this JSON file and reuse them")
    parser.add_argument("--output", type=Path, help="write the calibrated classifier to this .safetensors file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    descriptor = irconstyle.load(args.model)
    classifier = load_detector(descriptor.model)
    classes = classifier.classes
    if args.cache and args.cache.is_file():
        records = json.loads(args.cache.read_text())
    else:
        photos = [path for folder in args.photos for path in list_images(folder)]
        records = averaged_probabilities(classifier, photos)
        if args.cache:
            args.cache.write_text(json.dumps(records) + "\n")
    labels = torch.tensor([classes.index(r["truth"]) for r in records])
    log_probabilities = torch.tensor([r["probabilities"] for r in records], dtype=torch.float64).clamp_min(1e-12).log()
    bias = fit_bias(log_probabilities, labels, len(classes))
    before, recalls_before = balanced_accuracy(log_probabilities, labels, len(classes))
    after, recalls_after = balanced_accuracy(log_probabilities + bias, labels, len(classes))
    photos = sorted({r["photo"] for r in records})
    print(f"{len(records)} cases on {len(photos)} photos "
          f"({', '.join(f'{n} {c}' for c, n in sorted(Counter(r['truth'] for r in records).items()))})")
    print("| class | bias | recall before | recall after |\n|---|---|---|---|")
    for name, offset, old, new in zip(classes, bias.tolist(), recalls_before, recalls_after, strict=True):
        print(f"| {name} | {offset:+.3f} | {old:.1%} | {new:.1%} |")
    print(f"balanced accuracy on these photos: {before:.1%} before, {after:.1%} after")
    if args.output:
        config = descriptor.build_config.replace(class_bias={n: round(b, 4) for n, b in zip(classes, bias.tolist(),
                                                                                          strict=True)})
        model = config.build()
        model.load_state_dict(descriptor.model.state_dict())
        fitted_on = {"photos": sorted({str(Path(r["photo"]).parent) for r in records}), "cases": len(records),
                     "generators": "scripts/evaluate_detect.py ours()", "script": "scripts/calibrate_detect.py"}
        irconstyle.save(dataclasses.replace(descriptor, model=model, build_config=config), args.output,
                        metadata={"class_bias_fitted_on": fitted_on})
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
