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
    python benchmarks/maxim_vs_tensorflow.py --package maxim-deraining.tgz --size 256 512 1024 --weights …
    python benchmarks/maxim_vs_tensorflow.py --package maxim-deraining.tgz --size 512 --tensorflow-only
    python benchmarks/maxim_vs_tensorflow.py --weights deraining.safetensors --tiled 4000x3000 --tile 384

``--size`` takes several sides; each is its own interleaved comparison (warm-up, then ``--repeats`` rounds).
``--tiled WxH`` restores one seeded random W×H image with our port alone through
``irconstyle.inference.restore_tensor`` in ``--tile`` tiles (32-pixel blended overlap, as ``irconstyle
restore`` tiles), in a fresh process: its wall time, ms per megapixel of the photo and peak RSS. TensorFlow has
no tiling of its own, so it is not run there.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from harness import cpu_name, interleaved, load_average, peak_memory_mb, run_fresh_child

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from maxim_tensorflow_reference import TensorFlowMaxim, tensorflow_version  # noqa: E402

# "cpu": this process's CPU time (all its threads), which other processes on a loaded machine stretch far less
# than wall-clock time; at one thread it approaches the time an idle core would take.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def random_image(size: int, width: int | None = None) -> np.ndarray:
    """The benchmark input, 1×size×width×3 float32 in [0, 1] (speed does not depend on the content)."""
    return np.random.default_rng(0).random((1, size, width or size, 3), dtype=np.float32)


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
    call(random_image(args.size[0]))
    print(json.dumps(peak_memory_mb()))


def peak_rss(side: str, size: int, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", side, "--package", args.package, "--size", str(size),
               "--threads", str(args.threads)]
    if args.weights:
        command += ["--weights", args.weights]
    return run_fresh_child(command)


def tiled_child(args: argparse.Namespace) -> None:
    """In a fresh process: restore one ``--tiled`` W×H image in ``--tile`` tiles; print seconds and peak RSS."""
    import torch

    import irconstyle
    from irconstyle.inference import restore_tensor, tiles
    from irconstyle.runtime import retain_freed_memory

    retain_freed_memory()
    torch.set_num_threads(args.threads)
    width, height = args.tiled
    model = irconstyle.load_model(args.weights).eval()
    image = torch.from_numpy(random_image(height, width)).permute(0, 3, 1, 2)
    start, cpu_start = time.perf_counter(), time.process_time()
    restore_tensor(model, image, tile=args.tile)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    count = sum(1 for _ in tiles(height, width, args.tile, min(32, args.tile // 2)))
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "tiles": count, **peak_memory_mb()}))


def run_tiled(args: argparse.Namespace) -> str:
    import torch

    width, height = args.tiled
    load = load_average()
    command = [sys.executable, __file__, "--child", "tiled", "--weights", args.weights, "--tiled",
               f"{width}x{height}", "--tile", str(args.tile), "--threads", str(args.threads)]
    result = run_fresh_child(command)
    megapixels = width * height / 1e6
    return "\n".join([
        f"{Path(args.weights).name}, one seeded random {width}×{height} image ({megapixels:.1f} MP), "
        f"`restore_tensor(..., tile={args.tile})` (32-pixel overlap), {args.threads} threads, fresh process; torch "
        f"{torch.__version__}; load average {load} at the start, {load_average()} at the end.",
        "",
        "| CPU | image | tile | tiles | threads | wall s | wall ms/MP | CPU s | CPU ms/MP | peak RSS |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {cpu_name()} | {width}×{height} | {args.tile} | {result['tiles']} | {args.threads} | "
        f"{result['seconds']:.0f} | {result['seconds'] * 1000 / megapixels:.0f} | {result['cpu_seconds']:.0f} | "
        f"{result['cpu_seconds'] * 1000 / megapixels:.0f} | {result['peak_rss_mb']:.0f} MB |",
    ])


def run(args: argparse.Namespace) -> str:
    from irconstyle.runtime import retain_freed_memory

    retain_freed_memory()
    load = load_average()
    sides = {"TensorFlow": tensorflow_side(args.package, args.threads)}
    if not args.tensorflow_only:
        sides["PyTorch"] = torch_side(args.weights, args.threads)
    rows = [compare(sides, size, args) for size in args.size]
    import torch

    sizes = ", ".join(f"{size}×{size}" for size in args.size)
    lines = [
        f"{Path(args.package).name}, batch 1, {sizes}, {args.threads} threads, {args.clock} time, median of "
        f"{args.repeats} after a warm-up, interleaved in one process; TensorFlow {tensorflow_version()}, torch "
        f"{torch.__version__}, Python {platform.python_version()}; load average {load} at the start, "
        f"{load_average()} at the end. Peak RSS: a fresh process per side loading its model and restoring one image.",
        "",
        "| CPU | size | threads | TensorFlow ms | TensorFlow ms/MP | TensorFlow peak RSS | PyTorch ms | PyTorch ms/MP "
        "| PyTorch peak RSS | TF ÷ PyTorch time | max abs difference |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]
    return "\n".join(lines)


def compare(sides: dict, size: int, args: argparse.Namespace) -> str:
    """One table row: both sides timed interleaved on one ``size``×``size`` image."""
    image = random_image(size)
    outputs = {}  # each side's last output, compared below without running either again

    def contender(name: str):
        return lambda: outputs.__setitem__(name, sides[name](image))

    timings = interleaved({name: contender(name) for name in sides}, repeat=args.repeats, clock=CLOCKS[args.clock])
    difference = "—"
    if "PyTorch" in sides:
        difference = f"{np.abs(outputs['TensorFlow'] - outputs['PyTorch']).max():.1e}"
    memory = {} if args.no_memory else {
        name: peak_rss(child, size, args) for name, child in (("TensorFlow", "tensorflow"), ("PyTorch", "torch"))
        if name in sides
    }
    megapixels = size * size / 1e6

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
    row = (f"| {cpu_name()} | {size}×{size} | {args.threads} | {cells('TensorFlow')} | {cells('PyTorch')} | "
           f"{speed_up} | {difference} |")
    print(row, flush=True)  # rows come one by one: a large size can take minutes
    return row


def parse_size(text: str) -> tuple[int, int]:
    """``"4000x3000"`` -> (4000, 3000)."""
    width, separator, height = text.partition("x")
    if not separator or not width.isdigit() or not height.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 4000x3000")
    return int(width), int(height)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--package", help="an upscalerjs maxim .tgz (or its unpacked folder)")
    parser.add_argument("--weights", help="the .safetensors `irconstyle convert` made from the same package")
    parser.add_argument("--size", type=int, nargs="+", default=[256], help="image sides (multiples of 64)")
    parser.add_argument("--tiled", type=parse_size, metavar="WxH", help="restore one W×H image in tiles, ours only")
    parser.add_argument("--tile", type=int, default=384, help="tile side for --tiled (a multiple of 64)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall-clock time, or CPU time of the process (for a loaded machine)")
    parser.add_argument("--tensorflow-only", action="store_true", help="time TensorFlow alone (no --weights)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--child", choices=["tensorflow", "torch", "tiled"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if any(size % 64 for size in args.size):
        parser.error("--size must be a multiple of 64: the graph computes its shapes from H // 64 and W // 64")
    if args.child == "tiled":
        tiled_child(args)
    elif args.child:
        peak_rss_child(args)
    elif args.tiled:
        if not args.weights or args.tile % 64:
            parser.error("--tiled needs --weights and a --tile that is a multiple of 64")
        print(run_tiled(args))
    elif not args.package:
        parser.error("--package is required unless --tiled")
    elif not args.weights and not args.tensorflow_only:
        parser.error("--weights is required unless --tensorflow-only")
    else:
        print(run(args))


if __name__ == "__main__":
    main()
