#!/usr/bin/env python
"""Does ``torch.compile`` pay on this CPU? Compile time against the time it saves per image.

For the shipped denoiser's architecture and ConStyleNAFNet at paper size (batch 1, 256×256, fp32): the first
call of ``torch.compile(model)`` (Inductor, default mode) with a cold cache (a fresh
``TORCHINDUCTOR_CACHE_DIR``), the same with Inductor's ``freezing`` (weights folded in as constants, convolution
weights prepacked for oneDNN), and then the eager and compiled forwards interleaved: medians at ``--threads``
(wall-clock) and at 1 thread (thread CPU time). Break-even: how many images the compile time buys back.

    python benchmarks/torch_compile.py
    python benchmarks/torch_compile.py --models bundled-denoise --repeat 2
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time

import torch
import yaml

from harness import interleaved, load_average, section_main, shipped_denoiser_config, use_threads
from irconstyle import build_model
from irconstyle.runtime import retain_freed_memory


def architecture(name: str) -> torch.nn.Module:
    if name == "bundled-denoise":
        model = yaml.safe_load(shipped_denoiser_config().read_text())["model"]
        return build_model(model["name"], **model.get("options", {})).eval()
    return build_model(name).eval()


def compiled(model: torch.nn.Module, image: torch.Tensor, *, freezing: bool) -> tuple[torch.nn.Module, float]:
    """The compiled model and the seconds its first call took (tracing and code generation included)."""
    import torch._inductor.config as inductor_config

    torch._dynamo.reset()
    inductor_config.freezing = freezing
    candidate = torch.compile(model)
    start = time.perf_counter()
    with torch.no_grad():
        candidate(image)
    return candidate, time.perf_counter() - start


def measure(name: str, *, repeat: int, threads: int) -> list[str]:
    model = architecture(name)
    image = torch.rand(1, 3, 256, 256)
    rows = []
    for freezing in (False, True):
        with use_threads(threads), tempfile.TemporaryDirectory() as cache:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
            candidate, compile_seconds = compiled(model, image, freezing=freezing)
            with torch.no_grad():
                difference = (candidate(image) - model(image)).abs().max().item()
                contenders = {"eager": functools.partial(model, image), "compiled": functools.partial(candidate, image)}
                wall = interleaved(contenders, repeat=repeat)
                with use_threads(1):
                    work = interleaved(contenders, repeat=repeat, clock=time.thread_time)
        saved = (wall["eager"].median_ms - wall["compiled"].median_ms) / 1000
        break_even = f"{compile_seconds / saved:.0f} images" if saved > 0 else "never"
        rows.append(
            f"| {name} | {'freezing' if freezing else 'default'} | {compile_seconds:.0f} | "
            f"{wall['eager'].median_ms:.0f} | {wall['compiled'].median_ms:.0f} | "
            f"{wall['eager'].median_ms / wall['compiled'].median_ms:.2f}× | "
            f"{work['eager'].median_ms / work['compiled'].median_ms:.2f}× | {break_even} | {difference:.1e} |"
        )
    os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", default=["bundled-denoise", "constyle_nafnet"])
    parser.add_argument("--repeat", type=int, default=3)


def run(args: argparse.Namespace) -> str:
    retain_freed_memory()
    load = load_average()
    lines = [
        "",
        f"| model | Inductor | first call s (cold cache) | eager ms ({args.threads} threads) | compiled ms | speed-up "
        "| speed-up, 1 thread CPU time | break-even | max abs difference |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in args.models:
        lines += measure(name, repeat=args.repeat, threads=args.threads)
        print(f"  compile: {name} done", flush=True)
    header = (f"Batch 1, 256×256, fp32, torch {torch.__version__}, median of {args.repeat}, interleaved; load "
              f"average {load} at the start, {load_average()} at the end.")
    return "\n".join([header, *lines])


def main() -> None:
    section_main(__doc__, add_arguments, run)


if __name__ == "__main__":
    main()
