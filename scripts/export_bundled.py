#!/usr/bin/env python
"""Turn a training run into a bundled model: weights into src/irconstyle/weights/<task>.safetensors and a model card.

    python scripts/export_bundled.py runs/bundled-denoise denoise [--which best|final]

The card (Hugging Face style: metadata, intended use, limitations, training data, licence, scores) records the
data, the iterations and wall time read from the run's log, and PSNR/SSIM on the held-out photos (data/photos/val)
and the check photos at several levels against the no-op (the degraded input itself). Its "Intended use" and
"Limitations" sections are written by hand: a re-export keeps them from the card it replaces, and a card without
them gets a placeholder that the tests refuse, so each new card is read and its limitations checked against the
new scores before it ships.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from safetensors import safe_open

from irconstyle import ModelDescriptor, load, save
from irconstyle.evaluation import evaluate
from irconstyle.zoo.pretrained import BUNDLED, BUNDLED_FACTS

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
Against CBM3D and FFDNet on centre crops of the same photos: `python benchmarks/denoise_vs_classics.py` (add
`data/photos/check` for the check photos), tables in `benchmarks/README.md`.
"""
HAND_WRITTEN = ("Intended use", "Limitations")
PLACEHOLDER = "(write by hand before shipping: {section}, checked against the scores below)"
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
    """The committed config a run was started from: ``bundled-<name>`` ↔ ``configs/bundled/<name>.yaml``, other
    names ↔ ``configs/<name, dashes as underscores>.yaml``."""
    name = config["name"]
    if name.startswith("bundled-"):
        return f"configs/bundled/{name.removeprefix('bundled-')}.yaml"
    return f"configs/{name.replace('-', '_')}.yaml"


def training_record(stages: list[dict]) -> dict:
    """The metadata an export records of its training: the total iterations, the last config and every stage."""
    return {
        "iterations": sum(stage["iterations"] for stage in stages),
        "config": stages[-1]["config"]["name"],
        "stages": [{"config": stage["config"]["name"], "iterations": stage["iterations"],
                    "hours": None if stage["hours"] is None else round(stage["hours"], 2)} for stage in stages],
    }


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


def hand_written_sections(card: Path) -> dict[str, str]:
    """The hand-written sections (:data:`HAND_WRITTEN`) of an existing card, by title; missing ones are absent."""
    if not card.is_file():
        return {}
    sections = re.split(r"^## ", card.read_text(encoding="utf-8"), flags=re.MULTILINE)[1:]
    found = {title: body.strip() for title, _, body in (section.partition("\n") for section in sections)}
    unwritten = PLACEHOLDER.split("{", 1)[0]
    return {title: found[title] for title in HAND_WRITTEN if title in found and not found[title].startswith(unwritten)}


@dataclass(frozen=True)
class CardFacts:
    """What a bundled model's card states that is read from its run and its scores rather than written by hand."""

    task: str
    architecture: str
    options: dict
    parameters: int
    size_mib: float
    licence: str
    folders: str
    commands: str
    chained: str
    planned: str
    wall_time: str
    validated: str
    last_validation: str
    weights_from: str
    native_tile: int | None
    selection: str
    val_dir: str
    val_count: int
    val_rows: str
    check_dir: str
    check_count: int
    check_rows: str
    reproduce: str


def render_card(facts: CardFacts, hand_written: dict[str, str]) -> str:
    """The card's markdown: the facts, with the hand-written sections (placeholders where they are missing)."""
    written = {title: hand_written.get(title) or PLACEHOLDER.format(section=title.lower()) for title in HAND_WRITTEN}
    level = "SIGMA" if facts.task == "denoise" else "LEVEL"
    tiling = ""
    if facts.native_tile:
        tiling = (f"\n- Restores in {facts.native_tile}×{facts.native_tile} tiles (`native_tile` in the weights; "
                  "`--tile auto`, the default): its global poolings were trained on patches of that size and see "
                  "other statistics in a whole photo. The scores below are restored that way.")
    return f"""---
license: {facts.licence.lower()}
library_name: irconstyle
pipeline_tag: image-to-image
tags:
- image-restoration
- {facts.task}
- {facts.architecture}
---

# Bundled model: `{facts.task}`

`irconstyle restore PHOTO --task {facts.task}`, or `irconstyle.load("{facts.task}")` in Python.

- Architecture: `{facts.architecture}` {facts.options},
  {facts.parameters / 1e6:.2f} M parameters, {facts.size_mib:.1f} MiB.
- Weights: the EMA weights, {facts.weights_from}.{tiling}

## Intended use

{written["Intended use"]}

## Limitations

{written["Limitations"]}

## Training data

The offline photos collected by `scripts/prepare_photos.py` ({facts.folders}), degraded on the fly by
`irconstyle.data.degradations` as the configs below say; `docs/models.md` lists where the photos come from. The
held-out and check photos scored below were never trained on.

- Trained with {facts.commands}{facts.chained}.
- Iterations: {facts.planned} planned; training wall time {facts.wall_time}.
- Last validation in the log (restored as {facts.validated}):
  {facts.last_validation}.
- How the stages were chosen, and what did not help: `docs/experiments/bundled-models-training.md`.

## Licence

{facts.licence}, as the irconstyle package. The training photos are not distributed with the weights.

## Scores

PSNR (dB) and SSIM on RGB, uint8, crop 0, mean over the photos. Degraded inputs are clipped and stored as 8-bit
images, as a user has them (seed 0 + image index); `input` is the PSNR of the degraded input itself (doing
nothing). One row:
`irconstyle eval --model {facts.task} --gt {facts.val_dir} --degrade {facts.task}:{level} --input-bits 8`;
every row (re-exports and re-scores): `{facts.reproduce}`.

### Held-out photos ({facts.val_count} images in `{facts.val_dir}`, never used for training)
{facts.selection}
{facts.val_rows}

### Check photos ({facts.check_count} images in `{facts.check_dir}`, used for no training and no choice)

Other kinds of photo at native resolution (small camera JPEGs, a painting): whether the held-out scores carry over.

{facts.check_rows}
""" + (CLASSICS if facts.task == "denoise" else "")


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
    target = WEIGHTS / f"{args.task}.safetensors"
    model = model.with_facts(task=args.task, description=BUNDLED[args.task].description, **BUNDLED_FACTS)
    save(model, target, metadata=training_record(stages))

    rows, count = score_table(model, args.task, args.val)
    check_rows, check_count = score_table(model, args.task, args.check)
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
    val_tile = (config.get("val") or {}).get("tile")
    selection = ""
    if args.which == "best":
        selection = ("\nThe checkpoint was chosen by validation on these photos (at the config's validation level), "
                     "so its scores are slightly optimistic; `--which final` exports without that choice.\n")
    if len(stages) > 1:
        selection += ("\nEach stage after the first was kept for its scores on these photos, so they are not an "
                      "untouched test set.\n")
    facts = CardFacts(
        task=args.task, architecture=config["model"]["name"], options=config["model"]["options"],
        parameters=model.parameters, size_mib=target.stat().st_size / 2**20, licence=BUNDLED[args.task].licence,
        folders=folders, commands=commands, chained=chained, planned=planned, wall_time=wall_time,
        validated=f"{val_tile}×{val_tile} tiles" if val_tile else "whole images",
        last_validation=summary["last_validation"], weights_from=weights_from, native_tile=native_tile,
        selection=selection, val_dir=str(args.val), val_count=count, val_rows=rows, check_dir=str(args.check),
        check_count=check_count, check_rows=check_rows,
        reproduce=f"python scripts/export_bundled.py {args.run} {args.task}{option}",
    )
    card_path = WEIGHTS / f"{args.task}.md"
    hand_written = hand_written_sections(card_path)
    card = render_card(facts, hand_written)
    for title in HAND_WRITTEN:
        if title not in hand_written:
            print(f"{card_path}: write its '{title}' section by hand before shipping", flush=True)
    card_path.write_text(card, encoding="utf-8")
    print(f"wrote {target} and {card_path}")


if __name__ == "__main__":
    main()
