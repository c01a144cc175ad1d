"""What the benchmarks share: interleaved timing with medians, load, and this CPU's peak arithmetic rate.

Every comparison runs its contenders in turn inside one process (A, B, C, A, B, C, …) so that a busy
machine slows them alike, and reports medians. Wall-clock time is what a user waits; the load average is
printed next to it because other processes on the same cores stretch it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

CLOCK_SOURCE = Path(__file__).with_name("clock.c")
ROOT = Path(__file__).resolve().parents[1]


def shipped_denoiser_config() -> Path:
    """The config of the shipped denoiser's last training stage, named in its weights' metadata: its architecture
    is the one users restore with, and its batch and patch size the ones it trained at."""
    from safetensors import safe_open

    from irconstyle.zoo.pretrained import BUNDLED

    sys.path.insert(0, str(ROOT / "scripts"))
    from export_bundled import config_file

    with safe_open(BUNDLED["denoise"].path, "pt") as handle:
        name = json.loads(handle.metadata()["config"])
    return ROOT / config_file({"name": name})


@dataclass
class Timings:
    """Seconds per call of one contender."""

    seconds: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000

    @property
    def spread(self) -> str:
        """min–max in ms, to show how steady the machine was."""
        return f"{min(self.seconds) * 1000:.0f}–{max(self.seconds) * 1000:.0f}"


def interleaved(
    contenders: Mapping[str, Callable[[], object]],
    *,
    repeat: int,
    warmup: int = 1,
    before: Mapping[str, Callable[[], object]] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Timings]:
    """Time each contender ``repeat`` times, in turn, after ``warmup`` untimed rounds; ``before[name]`` runs
    untimed right before each of that contender's calls (e.g. to switch a process-wide setting).

    ``clock`` is wall-clock time by default; ``time.thread_time`` measures the work of a one-thread run
    without the time other processes held the core.
    """
    before = before or {}
    results = {name: Timings() for name in contenders}
    for round_index in range(warmup + repeat):
        for name, call in contenders.items():
            if name in before:
                before[name]()
            start = clock()
            call()
            if round_index >= warmup:
                results[name].seconds.append(clock() - start)
    return results


@contextlib.contextmanager
def use_threads(count: int) -> Iterator[None]:
    """Run torch with ``count`` intra-op threads inside the block."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def load_average() -> str:
    """The 1-minute load average and the number of CPUs, e.g. '3.2 on 2 CPUs'."""
    try:
        one_minute = os.getloadavg()[0]
    except OSError:
        return "unknown"
    return f"{one_minute:.1f} on {os.cpu_count()} CPUs"


def cpu_name() -> str:
    """The CPU's model name with its family, model and widest vector extension, e.g. ``AMD EPYC (family 25
    model 17, AVX-512 BF16)``: virtual machines often report only a brand, and the kernels differ by extension."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"

    def field(name: str) -> str | None:
        match = re.search(rf"^{name}\s*:\s*(.+)$", text, re.MULTILINE)
        return match.group(1).strip() if match else None

    flags = set((field("flags") or "").split())
    widest = next((label for flag, label in (("amx_tile", "AMX"), ("avx512_bf16", "AVX-512 BF16"),
                                             ("avx512f", "AVX-512"), ("avx2", "AVX2")) if flag in flags), None)
    family = field("cpu family")
    details = [f"family {family} model {field('model')}" if family else None, widest]
    name = field("model name") or "unknown CPU"
    return f"{name} ({', '.join(d for d in details if d)})" if any(details) else name


@dataclass(frozen=True)
class Clock:
    ghz: float
    how: str


def measure_clock() -> Clock:
    """The core clock under load: a chain of dependent integer multiplies (3 cycles each on Intel cores since
    Sandy Bridge) timed in thread CPU time, from ``clock.c`` built with the system C compiler. Falls back to
    the nominal MHz in /proc/cpuinfo where no compiler is found."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler:
        with tempfile.TemporaryDirectory() as folder:
            binary = Path(folder) / "clock"
            subprocess.run([compiler, "-O1", "-o", str(binary), str(CLOCK_SOURCE)], check=True)
            output = subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout
        how = "measured by timing a chain of dependent 64-bit multiplies, 3 cycles each (benchmarks/clock.c)"
        return Clock(float(output.split()[0]), how)
    text = Path("/proc/cpuinfo").read_text()
    mhz = float(re.search(r"^cpu MHz\s*:\s*([\d.]+)", text, re.MULTILINE).group(1))
    return Clock(mhz / 1000, "nominal, from /proc/cpuinfo (no C compiler to measure it)")


def gemm_gflops(dtype: torch.dtype, *, size: int = 1024, repeat: int = 5) -> float:
    """Best single-thread GEMM rate (GFLOP/s) for ``dtype`` on a size×size problem: what the kernels reach."""
    with use_threads(1):
        a = torch.randn(4 * size, size, dtype=dtype)
        b = torch.randn(size, size, dtype=dtype)
        a @ b
        best = float("inf")
        for _ in range(repeat):
            start = time.thread_time()
            a @ b
            best = min(best, time.thread_time() - start)
    return 2 * 4 * size**3 / best / 1e9


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class Peak:
    """Peak fp32 rate: cores × FMA units × 16 fp32 lanes (AVX-512) × 2 flops per FMA × clock.

    The number of 512-bit FMA units per core is read off a measurement: a single-thread fp32 GEMM faster than
    one unit's peak proves two (Xeon Gold/Platinum cores have two).
    """

    cores: int
    clock: Clock
    sgemm_gflops: float

    @property
    def fma_units(self) -> int:
        one_unit = 16 * 2 * self.clock.ghz
        return 2 if self.sgemm_gflops > 1.05 * one_unit else 1

    @property
    def gflops(self) -> float:
        return self.cores * self.fma_units * 16 * 2 * self.clock.ghz

    def describe(self) -> str:
        return (
            f"{self.cores} cores × {self.fma_units} AVX-512 FMA units × 16 fp32 lanes × 2 flops × "
            f"{self.clock.ghz:.2f} GHz = {self.gflops:.0f} GFLOP/s (clock {self.clock.how}; {self._units_reason()})"
        )

    def _units_reason(self) -> str:
        one_unit = f"one unit's {32 * self.clock.ghz:.0f}"
        sgemm = f"a 1-thread sgemm reached {self.sgemm_gflops:.0f} GFLOP/s"
        if self.fma_units == 2:
            return f"2 FMA units because {sgemm}, above {one_unit}"
        return f"1 FMA unit assumed: {sgemm}, not above {one_unit} (a lower bound on the peak)"


def measure_peak() -> Peak:
    return Peak(usable_cores(), measure_clock(), gemm_gflops(torch.float32))


def _fused_linear_flops(x_shape, *args, out_shape=None, **kwargs) -> int:
    """oneDNN's fused linear (irconstyle.models.layers.fused_linear), 2 · rows · in · out; its ``binary``
    overload takes (x, other, weight, bias, attr), the plain one (x, weight, bias, attr, scalars, algorithm)."""
    weight_shape = args[1] if len(args) == 4 and isinstance(args[3], str) else args[0]
    rows = 1
    for size in x_shape[:-1]:
        rows *= size
    return 2 * rows * x_shape[-1] * weight_shape[0]


def count_flops(model: torch.nn.Module, image: torch.Tensor) -> int:
    """FLOPs of one forward, counted by torch.utils.flop_counter (matrix products and convolutions, including
    the oneDNN fused matrix products the models use at inference)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, custom_mapping={torch.ops.mkldnn._linear_pointwise: _fused_linear_flops})
    with torch.no_grad(), counter:
        model(image)
    return counter.get_total_flops()


def section_main(doc: str, add_arguments: Callable[[argparse.ArgumentParser], None], run: Callable) -> None:
    """Run one benchmark section from the command line: its options and ``--threads``; print its table."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--threads", type=int, default=2)
    print(run(parser.parse_args()))


def peak_memory_mb() -> dict[str, float | None]:
    """This process's peak resident memory in MB: ``ru_maxrss`` and, where /proc has it (Linux), ``VmHWM``."""
    vm_hwm = None
    with contextlib.suppress(OSError):
        match = re.search(r"^VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
        vm_hwm = int(match.group(1)) / 1024 if match else None
    return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "vm_hwm_mb": vm_hwm}


# A measuring child is started through a small interpreter: on Linux a process's ru_maxrss starts at the RSS of
# the process it was forked from, and a benchmark's own process is large by then.
_LAUNCHER = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


def run_fresh_child(command: list[str]) -> dict:
    """Run ``command`` in a process not forked from this one; return the JSON object its last line prints."""
    output = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, *command], check=True, capture_output=True,
                            text=True).stdout
    return json.loads(output.strip().splitlines()[-1])
