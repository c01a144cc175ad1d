#!/usr/bin/env python
"""Training iterations per second: our models against the straightforward eager implementation of the same ones.

One training step is ``benchmarks/train_step.py``'s (training forward with every loss, backward, AdamW, EMA).
Contenders, interleaved in one process with the same initial weights: our model with freed memory retained
(as ``irconstyle train`` runs), the same with glibc's default allocator behaviour, and its plain eager
formulation (:func:`irconstyle.models.reference.plain_copy`: contiguous NCHW, no fusions, default allocator).
Medians at ``--threads`` (wall-clock) and at 1 thread (thread CPU time). Models: the shipped denoiser's
architecture as its last training stage trained it (that config's batch and patch size) and the ``configs/cpu``
sizes of the other families (batch 8, 64×64).

    python benchmarks/training.py
    python benchmarks/training.py --models bundled-denoise nafnet --repeat 2
"""

from __future__ import annotations

import argparse
import time

import torch
import yaml

from harness import Timings, interleaved, load_average, section_main, shipped_denoiser_config, use_threads
from irconstyle import build_model
from irconstyle.models.reference import plain_copy
from irconstyle.runtime import retain_freed_memory
from train_step import make_step, training_model

FAMILIES = ["constyle_nafnet", "nafnet", "constyle_restormer", "restormer"]
SMALL_BATCH, SMALL_PATCH = 8, 64


def bundled_denoiser() -> tuple[torch.nn.Module, int, int]:
    """The shipped denoiser as its last stage's config trains it, with that config's batch and patch size."""
    config = yaml.safe_load(shipped_denoiser_config().read_text())
    model = config["model"]
    network = build_model(model["name"], **model.get("options", {}), contrastive=True,
                          constyle_options=model.get("constyle", {})).train()
    train = config["data"]["train"]
    return network, train["batch_size"], train["patch_size"]


def measure(name: str, *, repeat: int, warmup: int, threads: int) -> tuple[dict[str, Timings], ...]:
    torch.manual_seed(0)
    if name == "bundled-denoise":
        model, batch, patch = bundled_denoiser()
    else:
        model, batch, patch = training_model(name, "small", torch.device("cpu")), SMALL_BATCH, SMALL_PATCH
    plain = plain_copy(model)
    device = torch.device("cpu")
    ours = make_step(model, batch=batch, patch=patch, device=device)
    steps = {"ours": ours, "ours, default malloc": ours, "plain eager": make_step(plain, batch=batch, patch=patch,
                                                                                    device=device)}
    before = {"ours": retain_freed_memory, "ours, default malloc": lambda: retain_freed_memory(False),
              "plain eager": lambda: retain_freed_memory(False)}
    with use_threads(threads):
        wall = interleaved(steps, repeat=repeat, warmup=warmup, before=before)
    with use_threads(1):
        work = interleaved(steps, repeat=repeat, warmup=warmup, before=before, clock=time.thread_time)
    retain_freed_memory()
    return wall, work, f"{batch} × {patch}×{patch}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", default=["bundled-denoise", *FAMILIES],
                        choices=["bundled-denoise", *FAMILIES])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)


def run(args: argparse.Namespace) -> str:
    load = load_average()
    lines = [
        "",
        f"| model | batch | it/s, ours ({args.threads} threads) | plain eager | vs plain | ours, default malloc "
        "| it/s, ours (1 thread, CPU time) | plain eager | vs plain |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in args.models:
        wall, work, shape = measure(name, repeat=args.repeat, warmup=args.warmup, threads=args.threads)
        rate = {key: 1000 / timing.median_ms for key, timing in wall.items()}
        work_rate = {key: 1000 / timing.median_ms for key, timing in work.items()}
        lines.append(
            f"| {name} | {shape} | {rate['ours']:.2f} | {rate['plain eager']:.2f} | "
            f"{rate['ours'] / rate['plain eager']:.2f}× | {rate['ours, default malloc']:.2f} | "
            f"{work_rate['ours']:.2f} | {work_rate['plain eager']:.2f} | "
            f"{work_rate['ours'] / work_rate['plain eager']:.2f}× |"
        )
        print(f"  training: {name} done", flush=True)
    header = (f"One training step (forward with all losses, backward, AdamW, EMA), median of {args.repeat} per "
              f"figure, interleaved; load average {load} at the start, {load_average()} at the end.")
    return "\n".join([header, *lines])


def main() -> None:
    section_main(__doc__, add_arguments, run)


if __name__ == "__main__":
    main()
