#!/usr/bin/env python
"""Training speed: iterations per second of one full training step for each architecture.

A step is what the trainer does every iteration: the training forward (for ConStyle models the query and
momentum encoders, the queue and the InfoNCE, content and style losses), backward, AdamW and the EMA update.
Batch 8 of 128×128 patches, 2 threads by default, at two sizes: ``small`` (the model options and queue of
``configs/cpu/<model>_denoise.yaml``) and ``paper`` (the published sizes, queue 65,760).

    python benchmarks/train_step.py                          # every architecture, small and paper size
    python benchmarks/train_step.py --sizes small --steps 5
    python benchmarks/train_step.py --models constyle_nafnet nafnet --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from irconstyle import build_model, list_models
from irconstyle.models.constyle import ConStyleRestorer
from irconstyle.training.config import LossSection, load_config
from irconstyle.training.ema import ModelEMA
from irconstyle.training.objective import TrainingObjective

CPU_CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "cpu"
PAPER_QUEUE = 65760


def model_options(name: str, size: str) -> tuple[dict, int]:
    """build_model keywords and ConStyle queue size for ``size`` (small: from configs/cpu)."""
    if size == "paper":
        return {}, PAPER_QUEUE
    model = load_config(CPU_CONFIGS / f"{name}_denoise.yaml").model  # resolved: its bases merged in
    return dict(model.options), model.constyle.queue_size


def training_model(name: str, size: str, device: torch.device) -> torch.nn.Module:
    """The architecture at ``size`` as the trainer builds it (ConStyle models with momentum encoder and queue)."""
    options, queue_size = model_options(name, size)
    probe = build_model(name, **options)
    if isinstance(probe, ConStyleRestorer):
        options.update(contrastive=True, constyle_options={"queue_size": queue_size})
    return build_model(name, **options).to(device).train()


def make_step(model: torch.nn.Module, *, batch: int, patch: int, device: torch.device) -> Callable[[], None]:
    """One training iteration of ``model`` on a fixed random batch, as the trainer runs it, as a function."""
    objective = TrainingObjective(model, LossSection())
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=3e-4, weight_decay=1e-4, foreach=True)  # as the trainer
    ema = ModelEMA(model, decay=0.999)
    clean = torch.rand(batch, 3, patch, patch, device=device)
    degraded = clean + 0.1 * torch.randn_like(clean)

    def step() -> None:
        total, _ = objective(degraded, clean)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        ema.update(model, 1)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return step


def time_steps(name: str, size: str, *, batch: int, patch: int, steps: int, warmup: int, device: torch.device):
    model = training_model(name, size, device)
    parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    step = make_step(model, batch=batch, patch=patch, device=device)
    timings = []
    for index in range(warmup + steps):
        start = time.perf_counter()
        step()
        if index >= warmup:
            timings.append(time.perf_counter() - start)
    return parameters, statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    restorers = [name for name in list_models() if name != "constyle_v2_prompter"]  # it outputs class logits
    parser.add_argument("--models", nargs="+", default=restorers, choices=restorers)
    parser.add_argument("--sizes", nargs="+", default=["small", "paper"], choices=["small", "paper"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=2, help="timed steps (the median is reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} threads"
    print(f"training step, batch {args.batch} × {args.patch}×{args.patch}, fp32, {where}")
    print(f"{'model':20s} {'size':6s} {'trainable':>10s} {'s/it':>8s} {'it/s':>8s} {'images/s':>9s}")
    for size in args.sizes:
        for name in args.models:
            parameters, seconds = time_steps(
                name, size, batch=args.batch, patch=args.patch, steps=args.steps, warmup=args.warmup, device=device
            )
            print(
                f"{name:20s} {size:6s} {parameters / 1e6:9.2f}M {seconds:8.3f} {1 / seconds:8.3f} "
                f"{args.batch / seconds:9.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
