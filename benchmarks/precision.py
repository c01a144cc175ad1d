#!/usr/bin/env python
"""bf16: what it costs in PSNR on the bundled models, and how fast this CPU's kernels run it.

PSNR: every installed bundled model (``src/irconstyle/weights/<task>.safetensors``), or those given with
``--models``, on the held-out photos (``data/photos/val``),
degraded for their task (σ 25 noise, medium rain/haze/blur) and stored as 8-bit images, scored with
:func:`irconstyle.evaluation.evaluate` in fp32 and under bf16 autocast.

Kernels: single-thread rates of the operations the models are made of, fp32 against bf16, channels-last,
timed in thread CPU time (best of 5). They explain the bf16 speed in ``inference.py``'s table.

    python benchmarks/precision.py
    python benchmarks/precision.py --model my_denoiser.safetensors:denoise
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from harness import gemm_gflops, section_main, use_threads
from irconstyle import load_model
from irconstyle.evaluation import evaluate
from irconstyle.inference import cpu_has_amx
from irconstyle.restoration import TASKS, bundled_model_path

ROOT = Path(__file__).resolve().parents[1]


def default_models() -> list[str]:
    """``PATH:TASK`` of the bundled models installed."""
    return [f"{bundled_model_path(task)}:{task}" for task in TASKS if bundled_model_path(task).is_file()]


def degradation_for(task: str) -> tuple[str, dict]:
    level = {"sigma": 25.0} if task == "denoise" else {"level": "medium"}
    return task, {**level, "quantize_bits": 8}


def psnr_cost(model_path: Path, task: str, photos: Path) -> dict:
    model = load_model(model_path)
    reports = {}
    for precision in ("fp32", "bf16"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bf16 warns that it is slow on CPUs without AMX: we know
            reports[precision] = evaluate(model, gt_dir=photos, degradation=degradation_for(task),
                                          precision=precision)
    fp32, bf16 = reports["fp32"], reports["bf16"]
    per_image = [b.psnr_rgb - a.psnr_rgb for a, b in zip(fp32.scores, bf16.scores, strict=True)]
    return {
        "images": len(per_image),
        "fp32": fp32.mean()["psnr_rgb"],
        "bf16": bf16.mean()["psnr_rgb"],
        "input": fp32.mean()["input_psnr_rgb"],
        "worst": max(per_image, key=abs),
    }


def _best_ms(call: Callable[[], object], repeat: int = 5) -> float:
    call()
    best = float("inf")
    for _ in range(repeat):
        start = time.thread_time()
        call()
        best = min(best, time.thread_time() - start)
    return best * 1000


def _operations(dtype: torch.dtype) -> dict[str, Callable[[], object]]:
    """The models' building operations on 256×256 channels-last maps in ``dtype``."""

    def cl(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, dtype=dtype).contiguous(memory_format=torch.channels_last)

    narrow, wide = cl(1, 64, 256, 256), cl(1, 128, 256, 256)
    conv3, conv1, depthwise = cl(64, 64, 3, 3), cl(128, 64, 1, 1), cl(128, 1, 3, 3)
    ones = torch.ones(64, dtype=dtype)
    return {
        "3×3 conv 64→64": lambda: F.conv2d(narrow, conv3, padding=1),
        "1×1 conv 64→128": lambda: F.conv2d(narrow, conv1),
        "depthwise 3×3, 128 ch": lambda: F.conv2d(wide, depthwise, padding=1, groups=128),
        "channel LayerNorm, 64 ch": lambda: F.layer_norm(narrow.permute(0, 2, 3, 1), (64,), ones, ones),
        "elementwise product, 128 ch": lambda: wide * wide,
    }


def kernel_rates() -> list[tuple[str, float, float]]:
    """(operation, fp32 ms, bf16 ms) at one thread."""
    with use_threads(1), torch.no_grad():
        fp32 = {name: _best_ms(call) for name, call in _operations(torch.float32).items()}
        bf16 = {name: _best_ms(call) for name, call in _operations(torch.bfloat16).items()}
    return [(name, fp32[name], bf16[name]) for name in fp32]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", default=default_models(), metavar="PATH:TASK",
                        help="models to score, each with its task (default: the bundled ones found)")
    parser.add_argument("--photos", type=Path, default=ROOT / "data" / "photos" / "val")


def _shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def run(args: argparse.Namespace) -> str:
    lines = []
    if not args.models or not args.photos.is_dir():
        lines.append("PSNR cost: skipped (no bundled model weights, or no held-out photos: "
                     "`python scripts/prepare_photos.py data/photos`).")
    else:
        lines += [
            f"PSNR cost of bf16 autocast on the {_shown(args.photos)} photos (degraded with seed 0, 8-bit inputs; "
            "mean PSNR on RGB uint8):",
            "",
            "| model | task | fp32 | bf16 | bf16 − fp32 | largest change on one photo | degraded input |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for entry in args.models:
            path, _, task = entry.rpartition(":")
            with use_threads(args.threads):
                cost = psnr_cost(Path(path), task, args.photos)
            level = ", ".join(f"{key} {value}" for key, value in degradation_for(task)[1].items()
                              if key != "quantize_bits")
            lines.append(
                f"| `{_shown(Path(path))}` | {task} ({level}) | {cost['fp32']:.3f} dB | {cost['bf16']:.3f} dB | "
                f"{cost['bf16'] - cost['fp32']:+.3f} dB | {cost['worst']:+.3f} dB | {cost['input']:.2f} dB |"
            )
    fp32_gemm, bf16_gemm = gemm_gflops(torch.float32), gemm_gflops(torch.bfloat16)
    amx = "has" if cpu_has_amx() else "has no"
    lines += [
        "",
        f"Kernel rates at 1 thread (this CPU {amx} AMX): a 4096×1024 by 1024×1024 matrix product runs at "
        f"{fp32_gemm:.0f} GFLOP/s in fp32 and {bf16_gemm:.0f} GFLOP/s in bf16. On 256×256 maps, channels-last:",
        "",
        "| operation | fp32 ms | bf16 ms | bf16 speed-up |",
        "|---|---:|---:|---:|",
    ]
    for name, fp32_ms, bf16_ms in kernel_rates():
        lines.append(f"| {name} | {fp32_ms:.2f} | {bf16_ms:.2f} | {fp32_ms / bf16_ms:.2f}× |")
    return "\n".join(lines)


def main() -> None:
    section_main(__doc__, add_arguments, run)


if __name__ == "__main__":
    main()
