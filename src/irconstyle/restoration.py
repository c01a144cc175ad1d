"""Restoring user images: bundled default models per task, numpy/PIL/tensor images, and files on disk."""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from irconstyle.atomic import atomic_write, check_writable
from irconstyle.data.io import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    image_to_tensor,
    max_value,
    read_image,
    tensor_to_image,
    write_image,
)
from irconstyle.detect import (
    AUTO_MIN_CONFIDENCE,
    Detection,
    NoModelForTask,
    check_min_confidence,
    choose_model,
    detect,
    load_detector,
    task_to_restore,
)
from irconstyle.inference import Progress, Tile, check_precision, check_tiling, restore_tensor
from irconstyle.zoo.descriptor import ModelDescriptor
from irconstyle.zoo.pretrained import BUNDLED, TASKS, ModelSource, resolve

AUTO = "auto"
"""``task="auto"``: detect each image's degradation and restore it with the model for it (see
:func:`irconstyle.detect.choose_model`); an image judged clean, or whose detection is less sure than
``min_confidence``, comes back unchanged."""


def bundled_model_path(task: str) -> Path:
    """The safetensors file of the default model shipped for ``task``."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return BUNDLED[task].path


def restore(
    image: np.ndarray | torch.Tensor | object,
    *,
    task: str = "denoise",
    model: ModelSource = None,
    tile: Tile = "auto",
    tile_overlap: int | None = None,
    self_ensemble: bool = False,
    precision: str = "fp32",
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    min_confidence: float = AUTO_MIN_CONFIDENCE,
):
    """Restore one image and return it in the type it came in.

    ``image`` is an H×W×3 numpy array (``uint8``, ``uint16`` or float in [0, 1]), a PIL image, or a float
    tensor in [0, 1] shaped 3×H×W or B×3×H×W. ``model`` is a descriptor, a module, a pretrained name (a bundled
    task name, an installed model) or a ``.safetensors`` path; by default the bundled model for ``task``.
    ``tile``: a tile size, ``"auto"`` (the default: the model's native tile if it has one, else tiles for
    images over a megapixel, see :func:`irconstyle.inference.resolve_tile`) or 0 / None (whole image).
    ``task="auto"`` detects the degradation first (:func:`irconstyle.detect`) and restores with the model
    for it; an image judged clean, or whose detected task has a probability under ``min_confidence``
    (:data:`irconstyle.detect.AUTO_MIN_CONFIDENCE` by default), comes back as an unchanged copy.
    """
    _check_task(task, model)
    if task == AUTO:
        _check_no_model_with_auto(model)
        detected = task_to_restore(detect(image, device=device), min_confidence)
        if detected is None:
            return _unchanged_copy(image)
        model = choose_model(detected).model
        task = detected
    network = resolve(model, task, device)
    options = dict(tile=tile, tile_overlap=tile_overlap, self_ensemble=self_ensemble, precision=precision,
                   progress=progress)
    if isinstance(image, torch.Tensor):
        batch = image if image.ndim == 4 else image.unsqueeze(0)
        restored = restore_tensor(network, batch.to(device, torch.float32), **options).to(image.device)
        return restored if image.ndim == 4 else restored[0]
    from PIL import Image

    if isinstance(image, Image.Image):
        array = np.asarray(image.convert("RGB"))
        return Image.fromarray(_restore_array(network, array, device, options))
    if isinstance(image, np.ndarray):
        return _restore_array(network, image, device, options)
    raise TypeError(f"restore takes a numpy array, a PIL image or a tensor, not {type(image).__name__}")


def _check_task(task: str, model: object) -> None:
    """A task names a bundled model or auto where no model is given (with a model, the task is not used)."""
    if model is None and task != AUTO and task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)} or {AUTO}")


def _check_no_model_with_auto(model: object) -> None:
    if model is not None:
        raise ValueError("task 'auto' chooses the model for each image; give a task or a model, not both")


def _unchanged_copy(image):
    if isinstance(image, torch.Tensor):
        return image.clone()
    if isinstance(image, np.ndarray):
        return image.copy()
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.copy()
    raise TypeError(f"restore takes a numpy array, a PIL image or a tensor, not {type(image).__name__}")


def _restore_array(network: ModelDescriptor, array: np.ndarray, device, options: dict) -> np.ndarray:
    tensor = image_to_tensor(array).unsqueeze(0).to(device)
    restored = restore_tensor(network, tensor, **options)[0]
    if np.issubdtype(array.dtype, np.floating):
        return restored.permute(1, 2, 0).cpu().numpy()
    return tensor_to_image(restored, bit_depth=16 if max_value(array) > 255 else 8)


@dataclass(frozen=True)
class FileResult:
    """The outcome for one input file: where it went, or why it failed; with ``task="auto"`` also what was
    detected and which model restored it, or why it was copied unchanged (``copied_because``: judged clean,
    not sure enough, or no model for the detected task)."""

    source: Path
    output: Path | None = None
    error: str | None = None
    detection: Detection | None = None
    model: str | None = None
    model_origin: str | None = None
    copied_because: str | None = None


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns -> a list of files, in order, without repeats.

    A folder named like an image (``photo.png/``) is kept as an input, so that reading it reports the mistake.
    """
    found: list[Path] = []
    for item in inputs:
        item = str(item)
        if Path(item).is_dir() and Path(item).suffix.lower() not in IMAGE_EXTENSIONS:
            found += sorted(p for p in Path(item).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        elif glob.has_magic(item):
            found += sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
        else:
            found.append(Path(item))
    return list(dict.fromkeys(found))


def check_outputs(sources: Sequence[Path], output_dir: str | os.PathLike) -> None:
    """Refuse, before any work, an output folder that cannot be written (it is a file, or read-only) and two
    inputs with one file name (from different folders), whose outputs would overwrite each other."""
    output_dir = Path(output_dir)
    first_with_name: dict[str, Path] = {}
    for source in sources:
        other = first_with_name.setdefault(source.name, source)
        if other.resolve() != source.resolve():
            raise ValueError(f"{other} and {source} would both be written to {output_dir / source.name}; "
                             "restore them into separate output folders")
    if sources:
        check_writable(output_dir / sources[0].name)


def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = 8) -> np.ndarray:
    """Two equal-size images next to each other with a white gap, for a visual comparison."""
    white = np.full((left.shape[0], gap, 3), max_value(left), dtype=left.dtype)
    return np.concatenate([left, white, right.astype(left.dtype)], axis=1)


def restore_files(
    inputs: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    *,
    task: str = "denoise",
    model: ModelSource = None,
    tile: Tile = "auto",
    tile_overlap: int | None = None,
    self_ensemble: bool = False,
    precision: str = "fp32",
    device: str | torch.device = "cpu",
    compare: bool = False,
    on_file: Callable[[FileResult], None] | None = None,
    tile_progress: Callable[[Path], Progress] | None = None,
    min_confidence: float = AUTO_MIN_CONFIDENCE,
) -> list[FileResult]:
    """Restore image files into ``output_dir`` keeping names, formats and bit depths.

    A file that cannot be read is reported in its :class:`FileResult` and the others still restore. Inputs are
    never overwritten. ``compare`` also writes ``<name>_compare.png`` (input | restored). ``task="auto"``
    detects each file's degradation and restores it with the model for it; a file judged clean, or detected
    with less than ``min_confidence``, or needing a task no installed or bundled model restores, is copied
    unchanged (byte for byte, so it decodes to exactly the same pixels). Inputs from different folders that share
    a file name are refused (ValueError) before anything is written.
    """
    _check_task(task, model)
    auto = task == AUTO
    if auto:
        _check_no_model_with_auto(model)
        check_min_confidence(min_confidence)
        load_detector(device=device)  # a missing classifier fails here, not once per file
        networks: dict[str, ModelDescriptor] = {}
    else:
        network = resolve(model, task, device)
        check_tiling(network, tile, tile_overlap)
        check_precision(torch.device(device), precision, network)
    output_dir = Path(output_dir)
    sources = expand_inputs(inputs)
    check_outputs(sources, output_dir)
    results = []
    for source in sources:
        target = output_dir / source.name
        detection = choice = copied_because = None
        try:
            if target.resolve() == source.resolve():
                raise ImageReadError(f"{source}: output would overwrite the input; choose another output folder")
            pixels = read_image(source)
            detected = None
            if auto:
                detection = detect(pixels, device=device)
                detected = task_to_restore(detection, min_confidence)
                if detection.task == "none":
                    copied_because = "judged clean"
                elif detected is None:
                    copied_because = f"not sure enough (below the minimum confidence {min_confidence:g})"
                else:
                    try:
                        choice = choose_model(detected)
                    except NoModelForTask as error:
                        copied_because = str(error)
                        detected = None
                if choice is not None:
                    if choice.model not in networks:
                        networks[choice.model] = resolve(choice.model, choice.task, device)
                        check_tiling(networks[choice.model], tile, tile_overlap)
                    network = networks[choice.model]
            if auto and detected is None:
                with atomic_write(target) as temporary:
                    shutil.copyfile(source, temporary)
            else:
                restored = restore(pixels, model=network, tile=tile, tile_overlap=tile_overlap,
                                   self_ensemble=self_ensemble, precision=precision, device=device,
                                   progress=tile_progress(source) if tile_progress else None)
                if pixels.dtype == np.uint16 and target.suffix.lower() not in (".png", ".tif", ".tiff"):
                    target = target.with_suffix(".png")
                write_image(target, restored)
                if compare:
                    write_image(output_dir / f"{source.stem}_compare.png", side_by_side(pixels, restored))
            result = FileResult(source, output=target, detection=detection, copied_because=copied_because,
                                model=choice.model if choice else None, model_origin=choice.origin if choice else None)
        except (ImageReadError, ValueError, OSError) as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            message = message if message.startswith(str(source)) else f"{source}: {message}"
            result = FileResult(source, error=message, detection=detection)
        results.append(result)
        if on_file:
            on_file(result)
    return results
