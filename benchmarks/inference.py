#!/usr/bin/env python
"""Inference time per image for each architecture (batch 1, 256×256, 2 threads by default), fp32 and bf16.

In one process, in turn, for every architecture: our model (fp32, freed memory retained as the
``irconstyle`` command does), the same with glibc's default allocator behaviour, the plain eager formulation
of the same model (:func:`irconstyle.models.reference.plain_copy`: NCHW, no fusions, default allocator — how
the published implementation computes) and our model under bf16 autocast. Each figure is the median of
``--repeat`` runs through :func:`irconstyle.inference.restore_tensor`. The published implementation's times
(fixed figures, :data:`PUBLISHED_MS`) give the "vs published" column; FLOPs are counted with
``torch.utils.flop_counter`` and set against this CPU's peak.

    python benchmarks/inference.py                       # every architecture
    python benchmarks/inference.py --models nafnet --size 512 --repeat 3
    # an AVX2-only CPU's kernels on an AVX-512 one (torch's, oneDNN's and MKL's ISA capped; bf16 is then emulated):
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
        python benchmarks/inference.py --models nafnet constyle_nafnet --contenders fp32 plain
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch

from harness import Peak, Timings, count_flops, interleaved, load_average, measure_peak, use_threads
from irconstyle import build_model, list_models
from irconstyle.inference import restore_tensor
from irconstyle.models.reference import plain_copy
from irconstyle.runtime import retain_freed_memory

# The authors' published implementation on this kind of machine (batch 1, 256×256, fp32, 2 threads, idle):
# the reference of the "vs published" columns.
PUBLISHED_MS = {
    "constyle_nafnet": 3000.0,
    "constyle_restormer": 9400.0,
    "constyle_maxim": 1800.0,
    "nafnet": 2400.0,
    "restormer": 7500.0,
}


CONTENDERS = ("fp32", "default malloc", "plain", "bf16")


@dataclass
class Row:
    """Median ms per image of each contender, in wall-clock time (``--threads``) and in one-thread CPU time."""

    name: str
    wall: dict[str, Timings]
    work: dict[str, Timings]
    gflop: float

    def ms(self, contender: str, kind: str = "wall") -> float | None:
        timings = (self.wall if kind == "wall" else self.work).get(contender)
        return timings.median_ms if timings else None


def measure(name: str, *, size: int, repeat: int, warmup: int, threads: int,
            only: tuple[str, ...] = CONTENDERS) -> Row:
    model = build_model(name).eval()
    image = torch.rand(1, 3, size, size)
    try:
        plain = plain_copy(model)
    except ValueError:
        plain = None
    contenders = {
        "fp32": lambda: restore_tensor(model, image),
        "default malloc": lambda: restore_tensor(model, image),
        "bf16": lambda: restore_tensor(model, image, precision="bf16"),
    }
    before = {"fp32": retain_freed_memory, "default malloc": lambda: retain_freed_memory(False),
              "bf16": retain_freed_memory}
    if plain is not None:
        contenders["plain"] = lambda: restore_tensor(plain, image)
        before["plain"] = lambda: retain_freed_memory(False)
    contenders = {label: run for label, run in contenders.items() if label in only}
    with use_threads(threads):
        wall = interleaved(contenders, repeat=repeat, warmup=warmup, before=before)
    with use_threads(1):
        work = interleaved(contenders, repeat=repeat, warmup=warmup, before=before, clock=time.thread_time)
    retain_freed_memory()
    return Row(name, wall, work, count_flops(model, image) / 1e9)


def _ratio(numerator: float | None, denominator: float | None) -> str:
    return f"{numerator / denominator:.2f}×" if numerator and denominator else "—"


def _ms(value: float | None) -> str:
    return f"{value:.0f}" if value else "—"


def markdown(rows: list[Row], *, size: int, threads: int, repeat: int, peak: Peak, load: str) -> str:
    comparable = size == 256 and threads == 2  # the conditions the published figures were measured under
    published = {row.name: PUBLISHED_MS.get(row.name) if comparable else None for row in rows}
    lines = [
        f"Batch 1, {size}×{size}, median of {repeat} runs per figure, the contenders interleaved in one process "
        f"(torch {torch.__version__}, CPU kernels {torch.backends.cpu.get_cpu_capability()}; load average {load}).",
        "",
        f"**Wall-clock, {threads} threads** (what a user waits; stretched by whatever else runs on the cores):",
        "",
        "| model | fp32 ms | vs published | plain eager ms | vs plain | fp32, default malloc ms | bf16 ms "
        "| bf16 vs published | bf16 vs our fp32 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        fp32 = row.ms("fp32")
        lines.append(
            f"| {row.name} | {fp32:.0f} ({row.wall['fp32'].spread}) | {_ratio(published[row.name], fp32)} | "
            f"{_ms(row.ms('plain'))} | {_ratio(row.ms('plain'), fp32)} | {_ms(row.ms('default malloc'))} | "
            f"{_ms(row.ms('bf16'))} | {_ratio(published[row.name], row.ms('bf16'))} | "
            f"{_ratio(fp32, row.ms('bf16'))} |"
        )
    lines += [
        "",
        "**Work, 1 thread, thread CPU time** (insensitive to other processes: time the core spent on this "
        "forward):",
        "",
        "| model | fp32 ms | plain eager ms | vs plain | fp32, default malloc ms | vs default malloc | bf16 ms "
        "| bf16 vs our fp32 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        fp32 = row.ms("fp32", "work")
        lines.append(
            f"| {row.name} | {fp32:.0f} | {_ms(row.ms('plain', 'work'))} | {_ratio(row.ms('plain', 'work'), fp32)} | "
            f"{_ms(row.ms('default malloc', 'work'))} | {_ratio(row.ms('default malloc', 'work'), fp32)} | "
            f"{_ms(row.ms('bf16', 'work'))} | {_ratio(fp32, row.ms('bf16', 'work'))} |"
        )
    single_core = peak.gflops / peak.cores
    lines += [
        "",
        f"Arithmetic rate of the fp32 runs. Peak: {peak.describe()}; one core: {single_core:.0f} GFLOP/s.",
        "",
        f"| model | GFLOP per image | GFLOP/s, {threads} threads wall | % of peak | GFLOP/s, 1 thread CPU "
        "| % of one core's peak |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        wall_rate = row.gflop / (row.ms("fp32") / 1000)
        work_rate = row.gflop / (row.ms("fp32", "work") / 1000)
        lines.append(
            f"| {row.name} | {row.gflop:.1f} | {wall_rate:.0f} | {100 * wall_rate / peak.gflops:.0f}% | "
            f"{work_rate:.0f} | {100 * work_rate / single_core:.0f}% |"
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    restorers = [name for name in list_models() if name != "constyle_v2_prompter"]  # it outputs class logits
    parser.add_argument("--models", nargs="+", default=restorers, choices=restorers)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=CONTENDERS,
                        help="which to time (fp32 always); e.g. fp32 plain on a CPU where bf16 is emulated")


def run(args: argparse.Namespace, peak: Peak) -> str:
    load = load_average()
    rows = []
    for name in args.models:
        only = tuple(dict.fromkeys(["fp32", *args.contenders]))
        rows.append(measure(name, size=args.size, repeat=args.repeat, warmup=args.warmup, threads=args.threads,
                            only=only))
        print(f"  inference: {name} done", flush=True)
    return markdown(rows, size=args.size, threads=args.threads, repeat=args.repeat, peak=peak,
                    load=f"{load} at the start, {load_average()} at the end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args()
    print(run(args, measure_peak()))


if __name__ == "__main__":
    main()
