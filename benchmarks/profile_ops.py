#!/usr/bin/env python
"""Where a forward spends its time: torch.profiler's operator breakdown per architecture, fp32 and bf16.

One thread (so operators do not overlap), batch 1, 256×256, one profiled forward after a warm-up, freed memory
retained. Shares of self CPU time of the largest operators; ``aten::_to_copy`` under bf16 is autocast's casting.

    python benchmarks/profile_ops.py
    python benchmarks/profile_ops.py --models restormer --top 10
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from harness import section_main, use_threads
from irconstyle import build_model, list_models
from irconstyle.inference import precision_context
from irconstyle.runtime import retain_freed_memory


def breakdown(name: str, precision: str, *, size: int, top: int) -> str:
    model = build_model(name).eval()
    image = torch.rand(1, 3, size, size)
    with use_threads(1), torch.no_grad(), precision_context(image.device, precision):
        model(image)
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            model(image)
    events = sorted(profiler.key_averages(), key=lambda event: -event.self_cpu_time_total)
    total = sum(event.self_cpu_time_total for event in events)
    shares = ", ".join(
        f"{event.key.removeprefix('aten::')} {100 * event.self_cpu_time_total / total:.0f}%" for event in events[:top]
    )
    return f"| {name} | {precision} | {total / 1000:.0f} | {shares} |"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", default=list_models(), choices=list_models())
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--top", type=int, default=6)


def run(args: argparse.Namespace) -> str:
    retain_freed_memory()
    lines = [
        "| model | precision | ms (1 thread, profiled) | largest operators, share of self CPU time |",
        "|---|---|---:|---|",
    ]
    for name in args.models:
        for precision in args.precisions:
            lines.append(breakdown(name, precision, size=256, top=args.top))
        print(f"  profile: {name} done", flush=True)
    return "\n".join(lines)


def main() -> None:
    section_main(__doc__, add_arguments, run)


if __name__ == "__main__":
    main()
