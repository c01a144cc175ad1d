#!/usr/bin/env python
"""KBNet's kernel basis attention: our cache-sized chunks against the published whole-map unfold + matmul.

First table: one KBA call per row at one block width, batch 1, 32 kernel bases, 3×3 kernels, seeded random
inputs and bases, contiguous NCHW and channels-last inputs. Second table: a whole forward of the default
``constyle_kbnet`` and ``kbnet`` against :func:`irconstyle.models.reference.plain_copy` of the same model
(published KBA, plain LayerNorm, NCHW). Forward only, under ``no_grad``; thread CPU time per call
(``time.thread_time``, one thread, so other processes on the core do not count), median of interleaved
repeats; the largest absolute difference between the two outputs is printed with each row.

    python benchmarks/kernel_basis_attention.py
    python benchmarks/kernel_basis_attention.py --size 256 --widths 32 64 --repeat 5 --models
"""

from __future__ import annotations

import argparse
import time

import torch

from harness import cpu_name, interleaved, section_main, use_threads
from irconstyle import build_model
from irconstyle.models.kbnet import KernelBasisAttention
from irconstyle.models.reference import PlainKernelBasisAttention, plain_copy


def compare(width: int, size: int, repeat: int, layout: torch.memory_format) -> str:
    generator = torch.Generator().manual_seed(width)
    fast = KernelBasisAttention(width).eval()
    plain = PlainKernelBasisAttention(width).eval()
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(1, width, size, size, generator=generator).contiguous(memory_format=layout)
    attention = torch.randn(1, fast.bases, size, size, generator=generator).contiguous(memory_format=layout)
    with torch.no_grad():
        difference = (fast(x, attention) - plain(x, attention)).abs().max().item()
        times = interleaved(
            {"plain": lambda: plain(x, attention), "fast": lambda: fast(x, attention)},
            repeat=repeat,
            clock=time.thread_time,
        )
    plain_ms, fast_ms = times["plain"].median_ms, times["fast"].median_ms
    layout_name = "channels-last" if layout == torch.channels_last else "NCHW"
    return (
        f"| {width} | {size}×{size} | {layout_name} | {plain_ms:.1f} | {fast_ms:.1f} | {plain_ms / fast_ms:.1f}× "
        f"| {difference:.1e} |"
    )


def compare_models(name: str, size: int, repeat: int) -> str:
    torch.manual_seed(0)
    fast = build_model(name).eval()
    plain = plain_copy(fast)
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        difference = (fast(image) - plain(image)).abs().max().item()
        times = interleaved({"plain": lambda: plain(image), "fast": lambda: fast(image)}, repeat=repeat,
                            clock=time.thread_time)
    plain_ms, fast_ms = times["plain"].median_ms, times["fast"].median_ms
    return f"| {name} | {size}×{size} | {plain_ms:.0f} | {fast_ms:.0f} | {plain_ms / fast_ms:.1f}× | {difference:.1e} |"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--widths", nargs="+", type=int, default=[32, 64, 128])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--models", nargs="*", default=None, choices=["constyle_kbnet", "kbnet"],
                        help="also time whole models (default, when given bare: both)")


def run(args: argparse.Namespace) -> str:
    lines = [
        f"CPU: {cpu_name()}, 1 thread, thread CPU time, median of {args.repeat}",
        "",
        "| width | map | layout | published (ms) | chunked (ms) | speed-up | max abs difference |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    with use_threads(1):
        for width in args.widths:
            for layout in (torch.contiguous_format, torch.channels_last):
                lines.append(compare(width, args.size, args.repeat, layout))
        if args.models is not None:
            lines += ["", "| model | image | plain copy (ms) | ours (ms) | speed-up | max abs difference |",
                      "|---|---|---:|---:|---:|---:|"]
            for name in args.models or ["constyle_kbnet", "kbnet"]:
                lines.append(compare_models(name, args.size, max(3, args.repeat // 2)))
    return "\n".join(lines)


def main() -> None:
    section_main(__doc__, add_arguments, run)


if __name__ == "__main__":
    main()
