#!/usr/bin/env python
"""Google's MAXIM models on our held-out photos with our degradations, beside the bundled ConStyle models.

Every number comes from :func:`irconstyle.evaluation.evaluate` (what ``irconstyle eval`` runs): each clean
photo of ``--gt-root/FOLDER`` is degraded by ``irconstyle.data.degradations.degrade`` for the model's task and
level, seeded by the photo's index (seed 0 + i), stored as an 8-bit image (``--input-bits 8`` of
``irconstyle eval``), and restored by the MAXIM model and by the bundled model of the same task; both see the
same degraded input. ``tile="auto"`` as ``irconstyle eval`` and ``restore`` default to: whole images up to one
megapixel, 384×384 tiles (32-pixel blended overlap) beyond; a MAXIM model pads each image or tile as Google's
evaluation pads (``pad_as_google_eval``). Results go to ``OUTPUT_DIR/maxim_quality_FOLDER.json`` after each
evaluation, and a run skips the evaluations its file already holds, so it can be stopped and resumed; the
markdown table ``OUTPUT_DIR/maxim_quality.md`` is rewritten from all result files after each one.

The MAXIM models must be installed (``irconstyle install upscalerjs-maxim-*.tgz``; ``IRCONSTYLE_HOME`` chooses
the folder). Runs for different ``--only`` models can share the result files. MAXIM is slow on a CPU (the
``ms/MP`` column of ``irconstyle models``), so run it where it can take its time::

    OMP_NUM_THREADS=1 python benchmarks/maxim_quality.py --folders val check --threads 1
    python benchmarks/maxim_quality.py --table-only
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import torch
from PIL import Image

from harness import cpu_name, load_average
from irconstyle.atomic import atomic_write
from irconstyle.data.datasets import list_images
from irconstyle.evaluation import evaluate, parse_degradation
from irconstyle.restoration import resolve

ROOT = Path(__file__).resolve().parents[1]
INPUT_BITS = 8
# (installed MAXIM model, our task, level): in the order they run, the first pass covering every model once.
EVALUATIONS = [
    ("maxim-deblur", "deblur", "medium"),
    ("maxim-denoise", "denoise", "25"),
    ("maxim-derain", "derain", "medium"),
    ("maxim-dehaze-outdoor", "dehaze", "medium"),
    ("maxim-dehaze-indoor", "dehaze", "medium"),
    ("maxim-denoise", "denoise", "15"),
    ("maxim-denoise", "denoise", "50"),
    ("maxim-deblur", "deblur", "low"),
]
METRICS = ("psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y")


def key_of(model: str, task: str, level: str) -> str:
    return f"{model} {task}:{level}"


def score(model_name: str, task: str, level: str, gt_dir: Path) -> dict:
    """Evaluate one model on one folder at one level; the report's means, per-image scores and seconds."""
    model = resolve(model_name, task=task)
    degradation = parse_degradation(f"{task}:{level}", quantize_bits=INPUT_BITS)
    start = time.perf_counter()
    report = evaluate(model, gt_dir=gt_dir, degradation=degradation, tile="auto")
    return {
        "model": model_name,
        "megapixels": sum(Image.open(path).width * Image.open(path).height for path in list_images(gt_dir)) / 1e6,
        "mean": report.mean(),
        "images": [asdict(image) for image in report.scores],
        "protocol": report.description,
        "seconds": time.perf_counter() - start,
    }


def result_path(output_dir: Path, folder: str) -> Path:
    return output_dir / f"maxim_quality_{folder}.json"


def load_results(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {"evaluations": {}}


def save_json(path: Path, data: dict) -> None:
    with atomic_write(path) as temporary:
        Path(temporary).write_text(json.dumps(data, indent=1) + "\n")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path.parent, os.O_RDONLY)  # the folder itself is the lock: no file left behind
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def run_folder(folder: str, args: argparse.Namespace) -> None:
    path = result_path(args.output_dir, folder)
    for model, task, level in EVALUATIONS:
        key = key_of(model, task, level)
        if key in load_results(path)["evaluations"] or (args.only and model not in args.only):
            continue
        load_before = load_average()
        maxim = score(model, task, level, args.gt_root / folder)
        bundled = score(task, task, level, args.gt_root / folder)
        entry = {
            "task": task, "level": level, "maxim": maxim, "bundled": bundled,
            "load_average": [load_before, load_average()], "cpu": cpu_name(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "input_bits": INPUT_BITS,
        }
        with _locked(path):  # runs for different --only models may share one file
            results = load_results(path)
            results["evaluations"][key] = entry
            save_json(path, results)
            write_table(args.output_dir)
        print(f"{folder} {key}: MAXIM {maxim['mean']['psnr_rgb']:.2f} dB in {maxim['seconds']:.0f} s, bundled "
              f"{bundled['mean']['psnr_rgb']:.2f} dB, input {maxim['mean']['input_psnr_rgb']:.2f} dB", flush=True)


def table(output_dir: Path) -> str:
    """The markdown table of every finished evaluation: per folder, MAXIM | bundled | input."""
    lines = [
        "| photos | MAXIM model | degradation | MAXIM PSNR / SSIM | bundled PSNR / SSIM | input PSNR |",
        "|---|---|---|---:|---:|---:|",
    ]
    for folder in ("val", "check"):
        finished = load_results(result_path(output_dir, folder))["evaluations"]
        for entry in (finished[key_of(*evaluation)] for evaluation in EVALUATIONS if key_of(*evaluation) in finished):
            maxim, bundled = entry["maxim"], entry["bundled"]
            level = entry["level"] if entry["task"] != "denoise" else f"σ {entry['level']}"
            lines.append(
                f"| {folder} ({len(maxim['images'])}) | `{maxim['model']}` | {entry['task']} {level} | "
                f"{maxim['mean']['psnr_rgb']:.2f} / {maxim['mean']['ssim_rgb']:.3f} | "
                f"{bundled['mean']['psnr_rgb']:.2f} / {bundled['mean']['ssim_rgb']:.3f} | "
                f"{maxim['mean']['input_psnr_rgb']:.2f} |"
            )
    return "\n".join(lines)


def write_table(output_dir: Path) -> None:
    with atomic_write(output_dir / "maxim_quality.md") as temporary:
        Path(temporary).write_text(
            "PSNR (dB, RGB) / SSIM (RGB), means over the photos; `python benchmarks/maxim_quality.py` "
            "(see its docstring for the protocol).\n\n" + table(output_dir) + "\n"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folders", nargs="+", default=["val", "check"], choices=["val", "check"])
    parser.add_argument("--gt-root", type=Path, default=ROOT / "data" / "photos")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--only", nargs="+", help="run only these MAXIM models")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--table-only", action="store_true", help="rewrite the markdown table and stop")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.table_only:
        for folder in args.folders:
            run_folder(folder, args)
    write_table(args.output_dir)
    print(table(args.output_dir))


if __name__ == "__main__":
    main()
