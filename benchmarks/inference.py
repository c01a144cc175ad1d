#!/usr/bin/env python
"""Inference time per image for each architecture at the paper's size (batch 1, 256×256, 2 threads by default).

Prints the median over repeated runs in ms, next to the published implementation's time on this kind of machine
(as given in the project's issues: a fixed reference, not measured here) and the ratio.

    python benchmarks/inference.py                    # fp32, every architecture
    python benchmarks/inference.py --precision bf16   # CPU autocast to bfloat16
    python benchmarks/inference.py --models nafnet --size 512 --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from irconstyle import build_model, list_models
from irconstyle.inference import precision_context

# Published implementation, batch 1, 256×256, fp32, 2 threads, on this kind of machine (issue 2 / issue 6).
PUBLISHED_MS = {
    "constyle_nafnet": 3000.0,
    "constyle_restormer": 9400.0,
    "constyle_maxim": 1800.0,
    "nafnet": 2400.0,
    "restormer": 7500.0,
}


def time_model(name: str, size: int, repeat: int, warmup: int, precision: str) -> list[float]:
    model = build_model(name).eval()
    image = torch.rand(1, 3, size, size)
    timings = []
    with torch.inference_mode(), precision_context(image.device, precision):
        for index in range(warmup + repeat):
            start = time.perf_counter()
            model(image)
            if index >= warmup:
                timings.append((time.perf_counter() - start) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list_models())
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"batch 1, {args.size}×{args.size}, {args.precision}, {args.threads} threads, "
          f"median of {args.repeat} (torch {torch.__version__})")
    print(f"{'model':20s} {'ms':>9s} {'min ms':>9s} {'published ms':>13s} {'speed-up':>9s}")
    for name in args.models:
        timings = time_model(name, args.size, args.repeat, args.warmup, args.precision)
        median = statistics.median(timings)
        published = PUBLISHED_MS.get(name) if args.size == 256 else None
        reference = f"{published:13.0f} {published / median:8.2f}×" if published else f"{'—':>13s} {'—':>9s}"
        print(f"{name:20s} {median:9.1f} {min(timings):9.1f} {reference}")


if __name__ == "__main__":
    main()
