#!/usr/bin/env python
"""Tile size for the default denoiser: time per megapixel and peak memory of tiled restores.

The architecture is the shipped denoiser's (from its last training stage's config; speed and memory do not
depend on the weights). Time per megapixel: a 1920×1080 image restored whole and in tiles of several sizes (overlap
32), interleaved in one process, medians, at ``--threads`` (wall-clock) and at 1 thread (thread CPU time).
Peak memory: a 3840×2160 uint8 photo restored through :func:`irconstyle.restore` in a fresh subprocess per
tile size, with freed memory retained as the ``irconstyle`` command does; peak RSS from ``getrusage``
(``ru_maxrss``), cross-checked with the kernel's high-water mark ``VmHWM``.

    python benchmarks/tiling.py
    python benchmarks/tiling.py --tiles 256 384 --repeat 2 --no-memory
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
import yaml

from harness import (
    ROOT,
    interleaved,
    load_average,
    peak_memory_mb,
    run_fresh_child,
    shipped_denoiser_config,
    use_threads,
)
from irconstyle import build_model
from irconstyle.inference import AUTO_TILE, AUTO_TILE_ABOVE_PIXELS, restore_tensor
from irconstyle.restoration import restore
from irconstyle.runtime import retain_freed_memory

OVERLAP = 32


def default_denoiser() -> torch.nn.Module:
    model = yaml.safe_load(shipped_denoiser_config().read_text())["model"]
    return build_model(model["name"], **model.get("options", {})).eval()


def peak_rss_child(tile: int, height: int, width: int, threads: int) -> None:
    """Run in a fresh process: restore one photo-sized uint8 array, print peak RSS (MB) and seconds as JSON."""
    torch.set_num_threads(threads)
    retain_freed_memory()
    model = default_denoiser()
    photo = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    start = time.perf_counter()
    restore(photo, model=model, tile=tile or None, tile_overlap=OVERLAP)
    seconds = time.perf_counter() - start
    print(json.dumps({"tile": tile, **peak_memory_mb(), "seconds": seconds}))


def peak_rss(tile: int, height: int, width: int, threads: int) -> dict:
    command = [sys.executable, __file__, "--child", str(tile), "--height", str(height), "--width", str(width),
               "--threads", str(threads)]
    return run_fresh_child(command)


def ms_per_megapixel(tiles: list[int], *, height: int, width: int, repeat: int, threads: int) -> dict:
    retain_freed_memory()
    model = default_denoiser()
    image = torch.rand(1, 3, height, width)
    megapixels = height * width / 1e6
    contenders = {
        (f"tile {tile}" if tile else "whole image"): (
            lambda tile=tile: restore_tensor(model, image, tile=tile or None, tile_overlap=OVERLAP)
        )
        for tile in tiles
    }
    with use_threads(threads):
        wall = interleaved(contenders, repeat=repeat)
    with use_threads(1):
        work = interleaved(contenders, repeat=repeat, clock=time.thread_time)
    return {
        name: (wall[name].median_ms / megapixels, work[name].median_ms / megapixels) for name in contenders
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tiles", nargs="+", type=int, default=[128, 192, 256, 384, 512],
                        help="tile sizes to compare (0 = the whole image)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true", help="skip the 3840×2160 peak-memory subprocesses")


def run(args: argparse.Namespace) -> str:
    load = load_average()
    speed = ms_per_megapixel([0, *args.tiles], height=1080, width=1920, repeat=args.repeat, threads=args.threads)
    print("  tiling: speed done", flush=True)
    memory = {} if args.no_memory else {tile: peak_rss(tile, 2160, 3840, args.threads) for tile in args.tiles}
    lines = [
        f"The shipped denoiser's architecture ({shipped_denoiser_config().relative_to(ROOT)}), overlap {OVERLAP}. "
        "Time: "
        f"1920×1080, median of {args.repeat}, interleaved; peak RSS: 3840×2160 uint8 photo through "
        f"`irconstyle.restore` in a fresh process (load average {load} at the start, {load_average()} at the "
        "end).",
        "",
        f"| tiles | ms per megapixel, {args.threads} threads wall | ms per megapixel, 1 thread CPU | "
        "peak RSS at 3840×2160 (VmHWM) | 3840×2160 wall s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (wall, work) in speed.items():
        tile = int(name.split()[1]) if name.startswith("tile") else 0
        rss = memory.get(tile)
        memory_cells = "— | —"
        if rss:
            hwm = f" ({rss['vm_hwm_mb'] / 1024:.2f})" if rss["vm_hwm_mb"] else ""
            memory_cells = f"{rss['peak_rss_mb'] / 1024:.2f} GB{hwm} | {rss['seconds']:.0f}"
        lines.append(f"| {name} | {wall:.0f} | {work:.0f} | {memory_cells} |")
    lines += [
        "",
        f"`irconstyle restore` tiles automatically (`--tile auto`, the default) at {AUTO_TILE}×{AUTO_TILE} once an "
        f"image has more than {AUTO_TILE_ABOVE_PIXELS / 1e6:.1f} megapixels.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--height", type=int, default=2160, help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, default=3840, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        peak_rss_child(args.child, args.height, args.width, args.threads)
        return
    print(run(args))


if __name__ == "__main__":
    main()
