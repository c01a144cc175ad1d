#!/usr/bin/env python
"""Measure the milliseconds per megapixel of every installed pretrained model, as the registry lists them.

Each model restores one seeded 512×512 image the way ``irconstyle restore`` does by default (fp32, tile
"auto": whole, or in the weights' native tile), once to warm up and then ``--repeats`` times. Reported: the
best CPU time of the process (with one thread, what the restore costs, little changed by other work on a
shared machine) and the best wall time. Entries with the same network and native tile (weights do not change
the cost) are measured once. Paste the CPU numbers into ``src/irconstyle/zoo/pretrained.py`` with the CPU
they were measured on.

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
    megapixels = SIDE * SIDE / 1e6
    measured: dict[tuple[str, int | None], str] = {}
    for entry in pretrained_models():
        if not entry.installed or (args.names and entry.name not in args.names):
            continue
        descriptor = resolve(entry.name)
        key = (descriptor.build_config.canonical().to_json(), descriptor.native_tile)
        if key not in measured:
            restore_tensor(descriptor, image, tile="auto")
            cpu = wall = float("inf")
            for _ in range(args.repeats):
                start_cpu, start_wall = time.process_time(), time.perf_counter()
                restore_tensor(descriptor, image, tile="auto")
                cpu = min(cpu, time.process_time() - start_cpu)
                wall = min(wall, time.perf_counter() - start_wall)
            measured[key] = (f"{cpu * 1000 / megapixels:8.0f} CPU-ms/MP {wall * 1000 / megapixels:8.0f} wall-ms/MP "
                             f"({args.threads} thread(s), native tile {descriptor.native_tile})")
        print(f"{entry.name:22s} {measured[key]}", flush=True)


if __name__ == "__main__":
    main()
