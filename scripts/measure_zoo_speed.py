#!/usr/bin/env python
"""Measure the milliseconds per megapixel of every installed pretrained model, as the registry lists them.

Each model restores one seeded 512×512 image the way ``irconstyle restore`` does by default (fp32, tile
"auto": whole, or in the weights' native tile), once to warm up and then ``--repeats`` times; the best time
is reported (the least disturbed by other work on the machine). Paste the numbers into
``src/irconstyle/zoo/pretrained.py`` together with the CPU and thread count they were measured with.

    OMP_NUM_THREADS=1 python scripts/measure_zoo_speed.py --threads 1
"""

from __future__ import annotations

import argparse
import time

import torch

from irconstyle.inference import restore_tensor
from irconstyle.zoo import pretrained_models, resolve

SIDE = 512


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("names", nargs="*", help="only these entries (default: every installed one)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    image = torch.rand(1, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(0))
    for entry in pretrained_models():
        if not entry.installed or (args.names and entry.name not in args.names):
            continue
        descriptor = resolve(entry.name)
        restore_tensor(descriptor, image, tile="auto")
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            restore_tensor(descriptor, image, tile="auto")
            best = min(best, time.perf_counter() - start)
        print(f"{entry.name:22s} {best * 1000 / (SIDE * SIDE / 1e6):8.0f} ms/MP  ({best:.2f} s for {SIDE}×{SIDE}, "
              f"{args.threads} thread(s), native tile {descriptor.native_tile})", flush=True)


if __name__ == "__main__":
    main()
