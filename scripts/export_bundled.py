#!/usr/bin/env python
"""Turn a training run into a bundled model: weights into src/irconstyle/weights/<task>.safetensors and a model card.

    python scripts/export_bundled.py runs/bundled-denoise denoise [--which best|final]

The card records the data, the iterations and wall time read from the run's log, and PSNR/SSIM on the held-out
photos (data/photos/val) at several levels against the no-op (the degraded input itself).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import time
from pathlib import Path

import torch
import yaml
from safetensors import safe_open

from irconstyle import ModelDescriptor, load, save
from irconstyle.evaluation import evaluate

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "src" / "irconstyle" / "weights"
LEVELS = {
    "denoise": [("σ 15", {"sigma": 15.0, "quantize_bits": 8}), ("σ 25", {"sigma": 25.0, "quantize_bits": 8}),
                ("σ 50", {"sigma": 50.0, "quantize_bits": 8})],
    "derain": [(name, {"level": name, "quantize_bits": 8}) for name in ("low", "medium", "high")],
    "dehaze": [(name, {"level": name, "quantize_bits": 8}) for name in ("low", "medium", "high")],
    "deblur": [(name, {"level": name, "quantize_bits": 8}) for name in ("low", "medium", "high")],
}
CLASSICS = """
Against CBM3D and FFDNet on the same held-out photos: `python benchmarks/denoise_vs_classics.py` (add
`data/photos/check` for the check photos), tables in `benchmarks/README.md`.
"""
TABLE_HEADER = """| level | input PSNR | restored PSNR | restored SSIM | restored PSNR-Y | time, all images |
|---|---|---|---|---|---|
"""
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ INFO (.*)$")


def training_summary(run: Path) -> dict:
    """Iterations reached and wall time spent, from the run's log (gaps over 10 minutes are pauses)."""
    times, iteration, best = [], 0, ""
    for line in (run / "train.log").read_text().splitlines():
        match = _STAMP.match(line)
        if not match:
            continue
        times.append(dt.datetime.fromisoformat(match.group(1)))
        found = re.match(r"iteration (\d+)", match.group(2))
        if found:
            iteration = max(iteration, int(found.group(1)))
        if "validation" in match.group(2):
            best = match.group(2)
    seconds = sum(min((b - a).total_seconds(), 600) for a, b in zip(times, times[1:], strict=False))
    return {"iterations": iteration, "hours": seconds / 3600, "last_validation": best}


def training_folders(config: dict) -> list[str]:
    """The clean-photo folders a run's config trains on."""
    folders = config["data"]["train"]["options"].get("clean_dirs", [])
    return [folders] if isinstance(folders, str) else list(folders)


def training_stages(run: Path) -> list[dict]:
    """The run and, through ``model.init_from``, the runs it started from, first stage first.

    A stage whose run folder is gone (a fresh machine, starting from the bundled weights) is read from the
    training record in the ``init_from`` weights' metadata instead.
    """
    stages = []
    while run is not None:
        config = yaml.safe_load((run / "config.yaml").read_text())
        stages.insert(0, {"run": run, "config": config, **training_summary(run)})
        init_from = config["model"].get("init_from")
        run = None
        if init_from and (Path(init_from).parent / "config.yaml").is_file():
            run = Path(init_from).parent
        elif init_from:
            stages[:0] = recorded_stages(Path(init_from))
    return stages


def recorded_stages(weights: Path) -> list[dict]:
    """The training stages that exported ``weights`` record; exports before the record held one stage's total."""
    with safe_open(weights, "pt") as handle:
        metadata = handle.metadata() or {}
    if "stages" in metadata:
        records = json.loads(metadata["stages"])
    elif "config" in metadata and "iterations" in metadata:
        records = [{"config": json.loads(metadata["config"]), "iterations": json.loads(metadata["iterations"]),
                    "hours": None}]
    else:
        raise SystemExit(f"{weights}: its run folder is gone and its metadata has no training record")
    stages = []
    for record in records:
        config_path = ROOT / config_file({"name": record["config"]})
        config = yaml.safe_load(config_path.read_text())
        if record["iterations"] > config["train"]["total_iters"]:
            raise SystemExit(f"{weights}: {record['iterations']} iterations over several stages that its metadata "
                             f"does not list; restore the run folder of {record['config']}")
        stages.append({"run": None, "config": config, "iterations": record["iterations"], "hours": record["hours"],
                       "last_validation": ""})
    return stages


def config_file(config: dict) -> str:
    """The committed config a bundled run was started from: ``bundled-<name>`` ↔ ``configs/bundled/<name>.yaml``."""
    return f"configs/bundled/{config['name'].removeprefix('bundled-')}.yaml"


def score_table(model: ModelDescriptor, task: str, folder: Path) -> tuple[str, int]:
    """The card's table rows for the photos in ``folder`` at the task's levels, and how many photos."""
    rows = []
    for label, level in LEVELS[task]:
        start = time.perf_counter()
        report = evaluate(model, gt_dir=folder, degradation=(task, level), seed=0)
        mean = report.mean()
        rows.append(f"| {label} | {mean['input_psnr_rgb']:.2f} | {mean['psnr_rgb']:.2f} | {mean['ssim_rgb']:.4f} | "
                    f"{mean['psnr_y']:.2f} | {time.perf_counter() - start:.0f} s |")
        print(rows[-1], flush=True)
    return TABLE_HEADER + "\n".join(rows), len(report.scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the training output folder")
    parser.add_argument("task", choices=sorted(LEVELS))
    parser.add_argument("--which", choices=["best", "final"], default="best")
    parser.add_argument("--native-tile", type=int,
                        help="record this tile size in the weights: restore (tile 'auto') then works in tiles of it "
                             "(for weights whose global poolings only fit patch-sized inputs)")
    parser.add_argument("--val", type=Path, default=Path("data/photos/val"))
    parser.add_argument("--check", type=Path, default=Path("data/photos/check"),
                        help="photos that no training or choice uses, scored on the card too")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = load(args.run / f"model_{args.which}.safetensors")
    if args.native_tile:
        model = model.with_facts(native_tile=args.native_tile)
    native_tile = model.native_tile  # from the option or from the run's val.tile
    stages = training_stages(args.run)
    summary, config = stages[-1], stages[-1]["config"]
    iterations = sum(stage["iterations"] for stage in stages)
    target = WEIGHTS / f"{args.task}.safetensors"
    record = [{"config": stage["config"]["name"], "iterations": stage["iterations"],
               "hours": None if stage["hours"] is None else round(stage["hours"], 2)} for stage in stages]
    model = model.with_facts(task=args.task)
    save(model, target, metadata={"iterations": iterations, "config": config["name"], "stages": record})

    rows, count = score_table(model, args.task, args.val)
    check_rows, check_count = score_table(model, args.task, args.check)
    parameters = model.parameters
    best = re.search(r"best (\S+) \S+ at iteration (\d+)", summary["last_validation"])
    if args.which == "final":
        weights_from = f"iteration {summary['iterations']} (the end of the run)"
    elif best:
        weights_from = f"iteration {best.group(2)} (the best {best.group(1)} on the validation photos)"
    else:
        weights_from = "the best checkpoint by the config's validation metric"
    commands = "\n  then ".join(f"`irconstyle train {config_file(stage['config'])}`" for stage in stages)
    chained = "\n  (each stage starts from the weights of the one before: `model.init_from`)" if len(stages) > 1 else ""
    planned = " + ".join(f"{stage['iterations']:,} of {stage['config']['train']['total_iters']:,}" for stage in stages)
    timed = [stage["hours"] for stage in stages if stage["hours"] is not None]
    wall_time = f"{sum(timed):.1f} h on 2 CPU cores (shared with other work)"
    if len(timed) < len(stages):
        wall_time += f", {len(stages) - len(timed)} earlier stage(s) not timed: their logs were not at hand"
    folders = ", ".join(f"`{folder}`" for folder in dict.fromkeys(
        folder for stage in stages for folder in training_folders(stage["config"])))
    option = (" --which final" if args.which == "final" else "") + (
        f" --native-tile {args.native_tile}" if args.native_tile else "")
    tiling = ""
    if native_tile:
        tiling = (f"\n- Restores in {native_tile}×{native_tile} tiles (`native_tile` in the weights; "
                  "`--tile auto`, the default): its global poolings were trained on patches of that size and see "
                  "other statistics in a whole photo. The scores below are restored that way.")
    val_tile = (config.get("val") or {}).get("tile")
    validated = f"{val_tile}×{val_tile} tiles" if val_tile else "whole images"
    selection = ""
    if args.which == "best":
        selection = ("\nThe checkpoint was chosen by validation on these photos (at the config's validation level), "
                     "so its scores are slightly optimistic; `--which final` exports without that choice.\n")
    if len(stages) > 1:
        selection += ("\nEach stage after the first was kept for its scores on these photos, so they are not an "
                      "untouched test set.\n")
    card = f"""# Bundled model: `{args.task}`

- Architecture: `{config['model']['name']}` {config['model']['options']},
  {parameters / 1e6:.2f} M parameters, {target.stat().st_size / 2**20:.1f} MiB.
- Trained on the offline photos collected by `scripts/prepare_photos.py`
  ({folders}), degraded on the fly,
  with {commands}{chained}.
- Iterations: {planned} planned; training wall time {wall_time}.
- Last validation in the log (restored as {validated}):
  {summary['last_validation']}.
- Weights: the EMA weights, {weights_from}.{tiling}

## Held-out photos ({count} images in `{args.val}`, never used for training)
{selection}
Degraded inputs are clipped and stored as 8-bit images, as a user has them (seed 0 + image index);
`input` is the PSNR of the degraded input itself (doing nothing). PSNR/SSIM on RGB, uint8, crop 0.

{rows}

## Check photos ({check_count} images in `{args.check}`, used for no training and no choice)

Other kinds of photo at native resolution (small camera JPEGs, a painting): whether the held-out scores carry over.
Scored the same way.

{check_rows}

Reproduce these numbers (re-exports and re-scores):
`python scripts/export_bundled.py {args.run} {args.task}{option}`.
""" + (CLASSICS if args.task == "denoise" else "")
    (WEIGHTS / f"{args.task}.md").write_text(card)
    print(f"wrote {target} and {WEIGHTS / (args.task + '.md')}")


if __name__ == "__main__":
    main()
