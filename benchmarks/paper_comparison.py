#!/usr/bin/env python
"""Does ConStyle help? Origin against ConStyle bodies, and ConStyle's ablations, trained the same way at CPU scale.

A *cell* is one training run: a task, a body, a variant and a seed. Its config is composed from
``paper_comparison/grid.yaml`` (one base, small overrides per task, body and variant); it trains with the package's
own trainer into ``runs/paper_comparison/<cell>/`` (resumable: rerun the same command after an interruption), then
its final EMA weights are scored on the held-out and the check photos at every level of the task, and one record is
appended to ``benchmarks/results/paper_comparison.json`` (PSNR/SSIM per photo and mean, parameters, GFLOPs per
256² image, iterations, wall hours, the validation curve with its wall-clock times, the CPU, a fingerprint of the
photos). A cell that has a record is not run again.

    python benchmarks/paper_comparison.py --task derain --body nafnet --variant constyle --seed 1
    python benchmarks/paper_comparison.py --missing --jobs 2          # every cell of the grid without a record
    python benchmarks/paper_comparison.py --missing --list            # what is missing, without running it
    python benchmarks/paper_comparison.py --page                      # tables, tests and figures from the JSON
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import platform
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from harness import count_flops, cpu_name
from irconstyle import load_model
from irconstyle.atomic import atomic_write
from irconstyle.data.io import read_image
from irconstyle.data.pairing import list_images
from irconstyle.evaluation import evaluate, parse_degradation
from irconstyle.training import train
from irconstyle.training.config import TrainingConfig, apply_overrides, config_from_dict
from irconstyle.training.schema import deep_merge

HERE = Path(__file__).resolve().parent
GRID = HERE / "paper_comparison" / "grid.yaml"
RESULTS = HERE / "results" / "paper_comparison.json"
RUNS = Path("runs/paper_comparison")


@dataclass(frozen=True, order=True)
class Cell:
    task: str
    body: str
    variant: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.task}-{self.body}-{self.variant}-s{self.seed}"


def load_grid(path: Path = GRID) -> dict[str, Any]:
    with open(path) as handle:
        return yaml.safe_load(handle)


def check_cell(grid: Mapping[str, Any], cell: Cell) -> None:
    for kind, name in (("tasks", cell.task), ("bodies", cell.body), ("variants", cell.variant)):
        if name not in grid[kind]:
            raise SystemExit(f"{GRID.name}: no {kind[:-1] if kind != 'bodies' else 'body'} {name!r}; "
                             f"choose one of {', '.join(grid[kind])}")
    model_kind = grid["variants"][cell.variant]["model"]
    if model_kind not in grid["bodies"][cell.body]:
        raise SystemExit(f"{GRID.name}: the {cell.body} body has no {model_kind!r} model for variant {cell.variant}")


def cell_config(grid: Mapping[str, Any], cell: Cell, overrides: list[str] = ()) -> TrainingConfig:
    check_cell(grid, cell)
    variant = grid["variants"][cell.variant]
    raw = deep_merge(
        grid["base"],
        grid["tasks"][cell.task]["train"],
        grid["bodies"][cell.body][variant["model"]],
        variant["config"],
        {"name": cell.key, "seed": cell.seed},
    )
    return config_from_dict(apply_overrides(raw, overrides), source=f"{GRID.name}: {cell.key}")


def grid_cells(grid: Mapping[str, Any]) -> list[Cell]:
    cells = []
    for group in grid["groups"]:
        for task in group["tasks"]:
            for body in group["bodies"]:
                for variant in group["variants"]:
                    cells.extend(Cell(task, body, variant, seed) for seed in grid["seeds"])
    return list(dict.fromkeys(cells))


# ---------------------------------------------------------------------------------------------------------------
# Records


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside ``path``, so that cells finishing at once do not lose each other's records."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(path.suffix + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def read_records(path: Path = RESULTS) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    try:
        return json.loads(path.read_text())["records"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise SystemExit(f"{path}: not a paper-comparison results file ({error})") from None


def append_record(record: dict[str, Any], path: Path = RESULTS) -> None:
    with locked(path):
        records = [r for r in read_records(path) if r["cell"] != record["cell"]]
        records.append(record)
        records.sort(key=lambda r: r["cell"])
        with atomic_write(path) as temporary:
            temporary.write_text(json.dumps({"records": records}, indent=1) + "\n")


# ---------------------------------------------------------------------------------------------------------------
# One cell


@contextlib.contextmanager
def _wall_clock(run_dir: Path) -> Iterator[None]:
    """Add this invocation's wall time to ``run_dir/wall_seconds.json`` (so resumed runs count every piece)."""
    path = run_dir / "wall_seconds.json"
    start = time.monotonic()
    try:
        yield
    finally:
        run_dir.mkdir(parents=True, exist_ok=True)
        spent = json.loads(path.read_text())["seconds"] if path.exists() else 0.0
        with atomic_write(path) as temporary:
            temporary.write_text(json.dumps({"seconds": spent + time.monotonic() - start}))


def validation_curve(run_dir: Path, metric: str) -> list[dict[str, float]]:
    """The validation scores TensorBoard holds for a run, one point per iteration (the last write wins)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    tag = f"val/{metric}"
    if tag not in events.Tags().get("scalars", []):
        return []
    points = {event.step: event for event in events.Scalars(tag)}
    start = min(event.wall_time for event in points.values())
    return [{"iteration": step, metric: points[step].value, "wall_seconds": points[step].wall_time - start}
            for step in sorted(points)]


def score(model: torch.nn.Module, grid: Mapping[str, Any], task: str) -> dict[str, Any]:
    """PSNR/SSIM (RGB) per photo and mean, on the held-out and the check photos, at each level of ``task``."""
    evaluation = grid["evaluation"]
    scores: dict[str, Any] = {}
    for split in ("held_out", "check"):
        for text in grid["tasks"][task]["evaluate"]:
            degradation = parse_degradation(text, quantize_bits=evaluation["input_bits"])
            report = evaluate(model, gt_dir=evaluation[split], degradation=degradation, tile=None)
            scores.setdefault(split, {})[text] = {
                "psnr": report.mean()["psnr_rgb"],
                "ssim": report.mean()["ssim_rgb"],
                "input_psnr": report.mean()["input_psnr_rgb"],
                "per_photo": {s.name: {"psnr": s.psnr_rgb, "ssim": s.ssim_rgb} for s in report.scores},
            }
    return scores


def photo_fingerprint(folders: str | list[str]) -> str:
    """sha256 of the decoded pixels of every photo in ``folders``, with their names: the same photos, the same
    digest, however they were encoded (the photos are regenerated on every machine)."""
    digest = hashlib.sha256()
    for folder in [folders] if isinstance(folders, str) else folders:
        for path in list_images(folder):
            pixels = read_image(path)
            digest.update(f"{Path(folder).name}/{path.name} {pixels.shape} {pixels.dtype}\n".encode())
            digest.update(pixels.tobytes())
    return digest.hexdigest()


def run_cell(cell: Cell, *, grid: Mapping[str, Any], runs: Path, results: Path, overrides: list[str]) -> str:
    if any(record["cell"] == cell.key for record in read_records(results)):
        return f"{cell.key}: already recorded in {results}"
    config = cell_config(grid, cell, overrides)
    if config.threads:
        torch.set_num_threads(config.threads)
    run_dir = runs / cell.key
    with _wall_clock(run_dir):
        result = train(config, output_dir=run_dir, resume="auto", progress=False)
    if result.status != "completed" or result.final_weights is None:
        return f"{cell.key}: {result.status} at iteration {result.iteration}; run the same command to resume"
    model = load_model(result.final_weights).eval()
    record = {
        "cell": cell.key, "task": cell.task, "body": cell.body, "variant": cell.variant, "seed": cell.seed,
        "model": config.model.name, "iterations": result.iteration,
        "wall_hours": json.loads((run_dir / "wall_seconds.json").read_text())["seconds"] / 3600,
        "parameters": sum(p.numel() for p in model.parameters()),
        "gflops_256": count_flops(model, torch.rand(1, 3, 256, 256)) / 1e9,
        "scores": score(model, grid, cell.task),
        "validation_curve": validation_curve(run_dir, config.val.metric),
        "photos": {"train": photo_fingerprint(config.data.train.options["clean_dirs"]),
                   "validation": photo_fingerprint(config.data.val.options["clean_dirs"]),
                   **{split: photo_fingerprint(grid["evaluation"][split]) for split in ("held_out", "check")}},
        "threads": torch.get_num_threads(), "cpu": cpu_name(), "machine": platform.machine(),
        "torch": torch.__version__, "overrides": list(overrides),
    }
    append_record(record, results)
    held_out = record["scores"]["held_out"]
    summary = ", ".join(f"{level} {value['psnr']:.2f} dB" for level, value in held_out.items())
    return f"{cell.key}: recorded ({summary} on the held-out photos, {record['wall_hours']:.2f} h)"


def run_missing(grid: Mapping[str, Any], *, grid_path: Path, jobs: int, results: Path, runs: Path, overrides: list[str],
                list_only: bool) -> None:
    done = {record["cell"] for record in read_records(results)}
    missing = [cell for cell in grid_cells(grid) if cell.key not in done]
    print(f"{len(missing)} of {len(grid_cells(grid))} cells have no record")
    if list_only:
        print("\n".join(cell.key for cell in missing))
        return
    running: list[tuple[Cell, subprocess.Popen]] = []
    failed = []
    queue = list(missing)
    while queue or running:
        while queue and len(running) < jobs:
            cell = queue.pop(0)
            command = [sys.executable, __file__, "--task", cell.task, "--body", cell.body, "--variant", cell.variant,
                       "--seed", str(cell.seed), "--results", str(results), "--runs", str(runs),
                       "--grid", str(grid_path)]
            for override in overrides:
                command += ["--set", override]
            running.append((cell, subprocess.Popen(command)))
        time.sleep(1.0)
        for item in list(running):
            if item[1].poll() is not None:
                running.remove(item)
                if item[1].returncode:
                    failed.append(item[0].key)
    if failed:
        raise SystemExit(f"{len(failed)} cells failed: {', '.join(failed)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task")
    parser.add_argument("--body")
    parser.add_argument("--variant")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--missing", action="store_true", help="run every grid cell that has no record")
    parser.add_argument("--list", action="store_true", help="with --missing: only list the cells")
    parser.add_argument("--jobs", type=int, default=2, help="cells at a time with --missing")
    parser.add_argument("--page", action="store_true", help="write the results page and its figures")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a training-config value in every cell (recorded), e.g. train.total_iters=20")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--runs", type=Path, default=RUNS)
    parser.add_argument("--grid", type=Path, default=GRID)
    args = parser.parse_args()
    grid = load_grid(args.grid)
    if args.page:
        from paper_comparison_page import write_page

        print(write_page(read_records(args.results), grid))
    elif args.missing:
        run_missing(grid, grid_path=args.grid, jobs=args.jobs, results=args.results, runs=args.runs, overrides=args.set,
                    list_only=args.list)
    else:
        if None in (args.task, args.body, args.variant, args.seed):
            parser.error("give --task, --body, --variant and --seed (or --missing, or --page)")
        cell = Cell(args.task, args.body, args.variant, args.seed)
        print(run_cell(cell, grid=grid, runs=args.runs, results=args.results, overrides=args.set), flush=True)


if __name__ == "__main__":
    main()
