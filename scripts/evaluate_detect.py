#!/usr/bin/env python
"""Measure the degradation classifier: accuracy and confusion matrices, other generators, real photos, speed.

    python scripts/evaluate_detect.py [--model FILE] [--json results.json] [--skip-timing]

1. Our generators (irconstyle.data.degradations) on the held-out photos, data/photos/val and data/photos/check
   reported separately: every level of every task applied to the whole photo at its own resolution, stored in
   8 bits, plus clean photos as they are, JPEG-compressed and resampled (all labelled ``none``).
2. Other generators than ours, on the same photos: scikit-image's ``random_noise`` (gaussian, poisson, speckle,
   salt & pepper), Pillow's GaussianBlur and BoxBlur (defocus), straight-line and arc motion kernels, JPEG at
   several qualities and a plain downscale (labelled ``none``).
3. The real degraded photos in Google's MAXIM npm packages (``package/assets/fixture.png``: GoPro blur, SIDD
   camera noise, rain, SOTS haze indoor and outdoor, LOL low light, FiveK retouching).
4. Milliseconds per megapixel of ``irconstyle.detect`` from a decoded uint8 photo, at 1 and 2 threads.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import tarfile
import time
import zlib
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

from irconstyle.data import degradations as D
from irconstyle.data.datasets import list_images
from irconstyle.data.io import float_to_image, image_to_float, read_image
from irconstyle.detect import AUTO_MIN_CONFIDENCE, Detection, detect, load_detector, task_to_restore

ROOT = Path(__file__).resolve().parents[1]
SPLITS = {"val": ROOT / "data" / "photos" / "val", "check": ROOT / "data" / "photos" / "check"}
NPM_CACHE = Path(os.environ.get("IRCONSTYLE_NPM_CACHE", Path.home() / ".cache" / "irconstyle" / "npm"))
FIXTURES = {  # package task -> the class it should get
    "deblurring": "deblur", "denoising": "denoise", "deraining": "derain", "dehazing-indoor": "dehaze",
    "dehazing-outdoor": "dehaze", "enhancement": "enhance", "retouching": "none",
}


def _resized(image: np.ndarray, factor: float, resample=Image.Resampling.BICUBIC) -> np.ndarray:
    height, width = image.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return image_to_float(np.asarray(Image.fromarray(float_to_image(image)).resize(size, resample)))


# (name, true class, function(clean float image, rng) -> degraded float image)
def ours() -> list[tuple[str, str, object]]:
    cases = [
        ("clean", "none", lambda x, rng: x),
        *[(f"jpeg q{q}", "none", lambda x, rng, q=q: D.jpeg_compress(x, q)) for q in (90, 60, 30)],
        ("resample ×0.75", "none", lambda x, rng: _resized(x, 0.75)),
        ("resample ×1.25", "none", lambda x, rng: _resized(x, 1.25)),
        *[(f"σ {s}", "denoise", lambda x, rng, s=s: D.gaussian_noise(x, s, rng)) for s in (5, 10, 15, 25, 50)],
    ]
    for task in ("derain", "dehaze", "enhance"):
        cases += [(level, task, lambda x, rng, t=task, lv=level: D.degrade(x, t, lv, rng).image)
                  for level in ("low", "medium", "high")]
    for kind in ("motion", "defocus"):
        cases += [(f"{kind} {level}", "deblur",
                   lambda x, rng, k=kind, lv=level: D.degrade(x, "deblur", {"level": lv, "kind": k}, rng).image)
                  for level in ("low", "medium", "high")]
    return cases


def _line_kernel(length: int, angle: float) -> np.ndarray:
    size = length + 2 - length % 2 + 1
    kernel = np.zeros((size, size))
    centre = size // 2
    for t in np.linspace(-(length - 1) / 2, (length - 1) / 2, 4 * length):
        y = centre + t * math.sin(math.radians(angle))
        x = centre + t * math.cos(math.radians(angle))
        kernel[int(round(y)), int(round(x))] += 1
    return kernel / kernel.sum()


def _arc_kernel(radius: int, degrees: float) -> np.ndarray:
    size = 2 * radius + 3
    kernel = np.zeros((size, size))
    for angle in np.linspace(0, math.radians(degrees), 8 * radius):
        kernel[int(round(size // 2 + radius * math.sin(angle))), int(round(size // 2 + radius * math.cos(angle)))] += 1
    return kernel / kernel.sum()


def _pil_filter(image: np.ndarray, image_filter) -> np.ndarray:
    return image_to_float(np.asarray(Image.fromarray(float_to_image(image)).filter(image_filter)))


def others() -> list[tuple[str, str, object]]:
    from skimage.util import random_noise

    def noise(mode: str, **options):
        return lambda x, rng: random_noise(x, mode=mode, rng=int(rng.integers(2**31)), **options).astype(np.float32)

    return [
        ("skimage gaussian var (15/255)²", "denoise", noise("gaussian", var=(15 / 255) ** 2)),
        ("skimage gaussian var (30/255)²", "denoise", noise("gaussian", var=(30 / 255) ** 2)),
        ("skimage poisson", "denoise", noise("poisson")),
        ("skimage speckle var 0.01", "denoise", noise("speckle", var=0.01)),
        ("skimage speckle var 0.04", "denoise", noise("speckle", var=0.04)),
        ("skimage s&p amount 0.02", "denoise", noise("s&p", amount=0.02)),
        ("PIL GaussianBlur r2", "deblur", lambda x, rng: _pil_filter(x, ImageFilter.GaussianBlur(2))),
        ("PIL GaussianBlur r4", "deblur", lambda x, rng: _pil_filter(x, ImageFilter.GaussianBlur(4))),
        ("PIL BoxBlur r2", "deblur", lambda x, rng: _pil_filter(x, ImageFilter.BoxBlur(2))),
        ("PIL BoxBlur r4", "deblur", lambda x, rng: _pil_filter(x, ImageFilter.BoxBlur(4))),
        ("line 15 px at 30°", "deblur", lambda x, rng: D.blur(x, _line_kernel(15, 30))),
        ("line 31 px at 100°", "deblur", lambda x, rng: D.blur(x, _line_kernel(31, 100))),
        ("arc r8 over 120°", "deblur", lambda x, rng: D.blur(x, _arc_kernel(8, 120))),
        *[(f"PIL JPEG q{q}", "none", lambda x, rng, q=q: D.jpeg_compress(x, q)) for q in (10, 30, 50, 70, 90)],
        ("PIL downscale ×0.5 (Lanczos)", "none", lambda x, rng: _resized(x, 0.5, Image.Resampling.LANCZOS)),
    ]


def degraded_cases(cases, photos: list[Path], salt: tuple[int, ...] = ()):
    """Yield (photo, case name, true class, degraded 8-bit image) for every case on every photo, seeded per
    (``salt``, photo, case), stored as an 8-bit file would be."""
    for path in photos:
        clean = image_to_float(read_image(path))
        for name, truth, make in cases:
            rng = np.random.default_rng([*salt, zlib.crc32(path.stem.encode()), zlib.crc32(name.encode())])
            yield path, name, truth, float_to_image(np.clip(make(clean, rng), 0.0, 1.0))


def run_cases(cases, photos: list[Path], classifier) -> list[dict]:
    records = []
    for path, name, truth, degraded in degraded_cases(cases, photos):
        found = detect(degraded, model=classifier)
        records.append({"photo": path.name, "case": name, "truth": truth, "task": found.task,
                        "confidence": found.confidence, "level": found.level})
    return records


def confusion(records: list[dict], classes: tuple[str, ...]) -> str:
    counts = Counter((r["truth"], r["task"]) for r in records)
    lines = ["| true \\ detected | " + " | ".join(classes) + " | accuracy |", "|---" * (len(classes) + 2) + "|"]
    for truth in classes:
        row = [counts[(truth, found)] for found in classes]
        if sum(row):
            share = row[classes.index(truth)] / sum(row)
            lines.append(f"| {truth} | " + " | ".join(map(str, row)) + f" | {share:.0%} |")
    return "\n".join(lines)


def per_case(records: list[dict]) -> str:
    grouped: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for record in records:
        grouped[(record["truth"], record["case"])].append(record)
    lines = ["| class | case | correct | detected as (count) | σ estimates |", "|---|---|---|---|---|"]
    for (truth, case), items in grouped.items():
        correct = sum(r["task"] == truth for r in items)
        found = ", ".join(f"{task} {n}" for task, n in Counter(r["task"] for r in items).most_common())
        sigmas = [r["level"] for r in items if r["level"] is not None]
        shown = f"{np.median(sigmas):.1f} (median of {len(sigmas)})" if sigmas else ""
        lines.append(f"| {truth} | {case} | {correct}/{len(items)} | {found} | {shown} |")
    return "\n".join(lines)


def accuracy(records: list[dict]) -> float:
    return sum(r["task"] == r["truth"] for r in records) / max(len(records), 1)


def auto_outcomes(records: list[dict], thresholds=(0.0, 0.4, AUTO_MIN_CONFIDENCE, 0.6)) -> str:
    """What ``restore --task auto --min-confidence T`` would do with each case: clean photos left unchanged,
    degraded ones restored with the right model, with a wrong one, or left unchanged."""
    lines = ["| --min-confidence | clean left unchanged | degraded, right model | degraded, wrong model | "
             "degraded, left unchanged |", "|---|---|---|---|---|"]
    clean = [r for r in records if r["truth"] == "none"]
    degraded = [r for r in records if r["truth"] != "none"]
    for threshold in thresholds:
        def chosen(record, threshold=threshold):
            return task_to_restore(Detection(record["task"], record["confidence"], {}), threshold)

        kept = sum(chosen(r) is None for r in clean)
        right = sum(chosen(r) == r["truth"] for r in degraded)
        untouched = sum(chosen(r) is None for r in degraded)
        wrong = len(degraded) - right - untouched
        default = " (default)" if threshold == AUTO_MIN_CONFIDENCE else ""
        lines.append(f"| {threshold:g}{default} | {kept}/{len(clean)} | {right}/{len(degraded)} | "
                     f"{wrong}/{len(degraded)} | {untouched}/{len(degraded)} |")
    return "\n".join(lines)


def fixtures(classifier) -> list[dict]:
    records = []
    for task, truth in FIXTURES.items():
        path = NPM_CACHE / f"upscalerjs-maxim-{task}-0.1.0.tgz"
        if not path.is_file():
            records.append({"package": task, "truth": truth, "missing": str(path)})
            continue
        with tarfile.open(path) as archive:
            data = archive.extractfile("package/assets/fixture.png").read()
        image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        found = detect(image, model=classifier)
        records.append({"package": task, "truth": truth, "size": f"{image.shape[1]}×{image.shape[0]}",
                        "task": found.task, "confidence": found.confidence, "level": found.level,
                        "scores": found.scores})
    return records


def timing(classifier, photo: Path) -> list[dict]:
    rows = []
    base = Image.open(photo).convert("RGB")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for width, height in ((1024, 1024), (4000, 3000)):
            pixels = np.asarray(base.resize((width, height), Image.Resampling.BICUBIC))
            detect(pixels, model=classifier)
            times, cpu_times = [], []
            for _ in range(5):
                start, cpu_start = time.perf_counter(), time.process_time()
                detect(pixels, model=classifier)
                times.append(time.perf_counter() - start)
                cpu_times.append(time.process_time() - cpu_start)
            ms, cpu_ms = 1000 * float(np.median(times)), 1000 * float(np.median(cpu_times))
            megapixels = width * height / 1e6
            rows.append({"threads": threads, "size": f"{width}×{height}", "ms": ms, "cpu_ms": cpu_ms,
                         "ms_per_megapixel": ms / megapixels, "cpu_ms_per_megapixel": cpu_ms / megapixels})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a classifier file (default: the bundled one)")
    parser.add_argument("--json", help="also write every record to this JSON file")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--timing-only", action="store_true", help="only the speed table")
    args = parser.parse_args()
    torch.set_num_threads(2)
    classifier = load_detector(args.model)
    classes = classifier.classes
    results: dict[str, object] = {"cpu": platform.processor() or platform.machine()}
    for split, folder in ({} if args.timing_only else SPLITS).items():
        photos = list_images(folder)
        for label, cases in (("ours", ours()), ("others", others())):
            records = run_cases(cases, photos, classifier)
            results[f"{split}/{label}"] = records
            print(f"\n## {split} ({len(photos)} photos), {label} generators: accuracy {accuracy(records):.1%} "
                  f"of {len(records)}\n")
            print(confusion(records, classes))
            print()
            print(per_case(records))
            print(f"\nWhat `restore --task auto` does ({split}, {label} generators):\n")
            print(auto_outcomes(records))
    fixture_records = [] if args.timing_only else fixtures(classifier)
    results["fixtures"] = fixture_records
    if fixture_records:
        print("\n## MAXIM package fixtures (real degraded photos)\n")
        print("| package | size | expected | detected | confidence | σ | second |")
        print("|---|---|---|---|---|---|---|")
    for record in fixture_records:
        if "missing" in record:
            print(f"| {record['package']} | missing: {record['missing']} | | | | | |")
            continue
        ranked = sorted(record["scores"].items(), key=lambda item: -item[1])
        level = f"{record['level']:.1f}" if record["level"] is not None else ""
        print(f"| {record['package']} | {record['size']} | {record['truth']} | {record['task']} | "
              f"{record['confidence']:.2f} | {level} | {ranked[1][0]} {ranked[1][1]:.2f} |")
    if not args.skip_timing:
        rows = timing(classifier, sorted(SPLITS["val"].iterdir())[0])
        results["timing"] = rows
        print("\n## Speed (median of 5, from a decoded uint8 array; CPU time is the process's, all threads)\n")
        print("| threads | size | wall ms | wall ms per megapixel | CPU ms | CPU ms per megapixel |")
        print("|---|---|---|---|---|---|")
        for row in rows:
            print(f"| {row['threads']} | {row['size']} | {row['ms']:.0f} | {row['ms_per_megapixel']:.1f} | "
                  f"{row['cpu_ms']:.0f} | {row['cpu_ms_per_megapixel']:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
