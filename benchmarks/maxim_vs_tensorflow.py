#!/usr/bin/env python
"""MAXIM in TensorFlow against our PyTorch port: the same package's weights, input and thread count.

TensorFlow side: the upscalerjs TF.js graph model run as a TF1 graph (``scripts/maxim_tensorflow_reference.py``,
``intra_op_parallelism_threads=--threads``, one inter-op thread). Our side: ``irconstyle.load_model`` of the
``.safetensors`` that ``irconstyle convert`` writes from the same .tgz, under ``torch.inference_mode`` with
``torch.set_num_threads(--threads)``. Both run one seeded random ``--size``×``--size`` image (batch 1) in turn
in one process, after one untimed warm-up round each, and each figure is the median of ``--repeats``
(``harness.interleaved``). Freed memory is retained (``irconstyle.runtime.retain_freed_memory``, as
``irconstyle restore`` does) for the whole process, so both sides run with the same allocator settings.

Peak memory: each side loads its model and restores one image in a fresh subprocess (started through a small
launcher, so it does not inherit this process's high-water mark); the figure is ``ru_maxrss`` from
``getrusage``, cross-checked with the kernel's ``VmHWM``. It counts native allocations (TensorFlow's and
oneDNN's buffers, torch's tensors) that ``tracemalloc`` cannot see, and includes the loaded weights and the
libraries themselves.

Needs TensorFlow, which the package never imports: run it with the TensorFlow virtualenv
(tests/assets/maxim/README.md)::

    python benchmarks/maxim_vs_tensorflow.py --package maxim-deblurring.tgz --weights deblurring.safetensors
    python benchmarks/maxim_vs_tensorflow.py --package maxim-deraining.tgz --size 512 --tensorflow-only
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np

from harness import cpu_name, interleaved, load_average, peak_memory_mb, run_fresh_child

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from maxim_tensorflow_reference import TensorFlowMaxim, tensorflow_version  # noqa: E402


def random_image(size: int) -> np.ndarray:
    """The benchmark input, 1×size×size×3 float32 in [0, 1] (speed does not depend on the content)."""
    return np.random.default_rng(0).random((1, size, size, 3), dtype=np.float32)


def tensorflow_side(package: str, threads: int):
    """A callable restoring one N×H×W×3 array with TensorFlow."""
    model = TensorFlowMaxim(package, threads=threads)
    return lambda image: model(image)[0]


def torch_side(weights: str, threads: int):
    """A callable restoring one N×H×W×3 array with our port (NCHW inside, NHWC out, like the TF side)."""
    import torch

    import irconstyle

    torch.set_num_threads(threads)
    model = irconstyle.load_model(weights).eval()

    def call(image: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(image).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()

    return call


def peak_rss_child(args: argparse.Namespace) -> None:
    """In a fresh process: load one side's model, restore one image, print the peak RSS (MB) as JSON."""
    from irconstyle.runtime import retain_freed_memory

    retain_freed_memory()
    call = tensorflow_side(args.package, args.threads) if args.child == "tensorflow" else None
    call = call or torch_side(args.weights, args.threads)
    call(random_image(args.size))
    print(json.dumps(peak_memory_mb()))


def peak_rss(side: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", side, "--package", args.package, "--size", str(args.size),
               "--threads", str(args.threads)]
    if args.weights:
        command += ["--weights", args.weights]
    return run_fresh_child(command)


def run(args: argparse.Namespace) -> str:
    from irconstyle.runtime import retain_freed_memory

    retain_freed_memory()
    load = load_average()
    image = random_image(args.size)
    sides = {"TensorFlow": tensorflow_side(args.package, args.threads)}
    if not args.tensorflow_only:
        sides["PyTorch"] = torch_side(args.weights, args.threads)
    timings = interleaved({name: (lambda call=call: call(image)) for name, call in sides.items()},
                          repeat=args.repeats)
    difference = "—"
    if "PyTorch" in sides:
        difference = f"{np.abs(sides['TensorFlow'](image) - sides['PyTorch'](image)).max():.1e}"
    memory = {} if args.no_memory else {
        name: peak_rss(child, args) for name, child in (("TensorFlow", "tensorflow"), ("PyTorch", "torch"))
        if name in sides
    }
    megapixels = args.size * args.size / 1e6

    def cells(name: str) -> str:
        if name not in sides:
            return "— | — | —"
        rss = memory.get(name)
        peak = f"{rss['peak_rss_mb']:.0f} MB" if rss else "—"
        median = timings[name].median_ms
        return f"{median:.0f} ({timings[name].spread}) | {median / megapixels:.0f} | {peak}"

    speed_up = "—"
    if "PyTorch" in sides:
        speed_up = f"{timings['TensorFlow'].median_ms / timings['PyTorch'].median_ms:.2f}×"
    import torch

    lines = [
        f"{Path(args.package).name}, batch 1, {args.size}×{args.size}, {args.threads} threads, median of "
        f"{args.repeats} after a warm-up, interleaved in one process; TensorFlow {tensorflow_version()}, torch "
        f"{torch.__version__}, Python {platform.python_version()}; load average {load} at the start, "
        f"{load_average()} at the end. Peak RSS: a fresh process per side loading its model and restoring one image.",
        "",
        "| CPU | size | threads | TensorFlow ms | TensorFlow ms/MP | TensorFlow peak RSS | PyTorch ms | PyTorch ms/MP "
        "| PyTorch peak RSS | TF ÷ PyTorch time | max abs difference |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {cpu_name()} | {args.size}×{args.size} | {args.threads} | {cells('TensorFlow')} | {cells('PyTorch')} | "
        f"{speed_up} | {difference} |",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--package", required=True, help="an upscalerjs maxim .tgz (or its unpacked folder)")
    parser.add_argument("--weights", help="the .safetensors `irconstyle convert` made from the same package")
    parser.add_argument("--size", type=int, default=256, help="image side (a multiple of 64)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tensorflow-only", action="store_true", help="time TensorFlow alone (no --weights)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--child", choices=["tensorflow", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.size % 64:
        parser.error("--size must be a multiple of 64: the graph computes its shapes from H // 64 and W // 64")
    if args.child:
        peak_rss_child(args)
    elif not args.weights and not args.tensorflow_only:
        parser.error("--weights is required unless --tensorflow-only")
    else:
        print(run(args))


if __name__ == "__main__":
    main()
