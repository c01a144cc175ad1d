"""Benchmark test folders as they are distributed: which layout a folder has, and the images it holds.

Each layout turns the folder the user names into :class:`BenchmarkImage` items (a name unique in the set, the
degraded file or None for a clean-only set, the clean file). :func:`detect_layout` finds the layout from the
files present, trying :data:`LAYOUTS` in order; :func:`scan_benchmark_folder` lists a folder's images.
Nothing is renamed or copied: every file is read where it lies.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from irconstyle.data.datasets import (
    ID_BEFORE_UNDERSCORE,
    DatasetError,
    ImagePair,
    PairingRule,
    _gopro_large_pairs,
    list_images,
    pair_files,
    pair_folders,
)
from irconstyle.data.io import IMAGE_EXTENSIONS


@dataclass(frozen=True)
class BenchmarkImage:
    """One image of a test set: ``name`` (unique within the set), the degraded file (None where the set holds
    clean images only and the protocol degrades them) and the clean reference."""

    name: str
    gt: Path
    lq: Path | None = None


@dataclass(frozen=True)
class FolderLayout:
    """How one distribution lays out a test set under its root folder.

    ``matches(root)`` says whether a folder has this layout (for detection), ``images(root)`` lists its
    images. ``center_crop_gt``: a clean image larger than its degraded one is centre-cropped to it (RESIDE
    SOTS indoor's clean images keep a border the hazy ones lack).
    """

    name: str
    description: str
    matches: Callable[[Path], bool]
    images: Callable[[Path], list[BenchmarkImage]]
    paired: bool = True
    center_crop_gt: bool = False


def _subfolders(root: Path) -> list[Path]:
    return sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (none is no error here: detection asks)."""
    return sorted(
        path for path in folder.iterdir()
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file() and not path.name.startswith(".")
    )


def _named(pairs: list[ImagePair], root: Path) -> list[BenchmarkImage]:
    """Items named by their degraded file's path below ``root``."""
    return [BenchmarkImage(pair.lq.relative_to(root).as_posix(), pair.gt, pair.lq) for pair in pairs]


# --- input/ + target/ (the Restormer / MPRNet downloads of Rain100H/L, Test100/1200/2800, GoPro, HIDE, RealBlur)


def _input_target_matches(root: Path) -> bool:
    return (root / "input").is_dir() and (root / "target").is_dir()


def _input_target_images(root: Path) -> list[BenchmarkImage]:
    return [BenchmarkImage(pair.lq.name, pair.gt, pair.lq) for pair in pair_folders(root / "input", root / "target")]


# --- Rain100H / Rain100L: rain-NNN (degraded) and norain-NNN (clean), in one folder or in subfolders

_RAIN = re.compile(r"rain-(\d+)")
_NORAIN = re.compile(r"norain-(\d+)")
_RAIN100 = PairingRule(lq_pattern=_RAIN.pattern, gt_pattern=_NORAIN.pattern)


def _rain100_files(root: Path) -> list[Path]:
    return [path for folder in (root, *_subfolders(root)) for path in _image_files(folder)]


def _rain100_matches(root: Path) -> bool:
    return any(_NORAIN.fullmatch(path.stem) for path in _rain100_files(root))


def _rain100_images(root: Path) -> list[BenchmarkImage]:
    lq, gt = [], []
    for path in _rain100_files(root):
        if _NORAIN.fullmatch(path.stem):
            gt.append(path)
        elif _RAIN.fullmatch(path.stem):
            lq.append(path)
        else:
            raise DatasetError(f"{path}: neither a rain-NNN (degraded) nor a norain-NNN (clean) image")
    return _named(pair_files(lq, gt, _RAIN100, lq_where=root, gt_where=root), root)


# --- RESIDE (SOTS outdoor / indoor, OTS): hazy/<id>_<...> against clear/<id> (or gt/<id>)

_CLEAR_FOLDERS = ("clear", "gt", "GT")


def _clear_folder(root: Path) -> Path | None:
    return next((root / name for name in _CLEAR_FOLDERS if (root / name).is_dir()), None)


def _reside_matches(root: Path) -> bool:
    return (root / "hazy").is_dir() and _clear_folder(root) is not None


def _reside_images(root: Path) -> list[BenchmarkImage]:
    clear = _clear_folder(root)
    if clear is None:
        raise DatasetError(f"{root}: no clean folder ({' or '.join(_CLEAR_FOLDERS)}/) next to hazy/")
    return _named(pair_folders(root / "hazy", clear, ID_BEFORE_UNDERSCORE), root)


# --- GoPro test (GOPRO_Large/test): <sequence>/blur/<frame> against <sequence>/sharp/<frame>; blur_gamma unused


def _gopro_matches(root: Path) -> bool:
    return any((folder / "blur").is_dir() and (folder / "sharp").is_dir() for folder in _subfolders(root))


def _gopro_images(root: Path) -> list[BenchmarkImage]:
    return [
        BenchmarkImage(f"{pair.lq.parent.parent.name}/{pair.lq.name}", pair.gt, pair.lq)
        for pair in _gopro_large_pairs(root)
    ]


# --- clean images only (CBSD68, Urban100, Kodak24, McMaster): the protocol adds the degradation


def _clean_matches(root: Path) -> bool:
    return bool(_image_files(root))


def _clean_images(root: Path) -> list[BenchmarkImage]:
    return [BenchmarkImage(path.name, path) for path in list_images(root)]


LAYOUTS: dict[str, FolderLayout] = {
    layout.name: layout
    for layout in (
        FolderLayout("gopro", "<sequence>/blur/<frame> + <sequence>/sharp/<frame> (GoPro test)",
                     _gopro_matches, _gopro_images),
        FolderLayout("reside", "hazy/<id>_<...> + clear/<id> or gt/<id> (RESIDE SOTS outdoor/indoor)",
                     _reside_matches, _reside_images, center_crop_gt=True),
        FolderLayout("input-target", "input/<name> + target/<name> (Restormer's downloads)",
                     _input_target_matches, _input_target_images),
        FolderLayout("rain100", "rain-NNN + norain-NNN, together or in subfolders (Rain100H/L)",
                     _rain100_matches, _rain100_images),
        FolderLayout("clean", "clean images only (CBSD68, Urban100, Kodak24, McMaster)",
                     _clean_matches, _clean_images, paired=False),
    )
}
"""Layout name -> layout, in the order :func:`detect_layout` tries them."""


def get_layout(name: str) -> FolderLayout:
    """The layout called ``name`` (see :data:`LAYOUTS`)."""
    try:
        return LAYOUTS[name.lower()]
    except KeyError:
        raise DatasetError(f"unknown layout {name!r}; known: {', '.join(LAYOUTS)}") from None


def detect_layout(root: str | os.PathLike) -> FolderLayout:
    """The first layout of :data:`LAYOUTS` that ``root`` has; an error listing them where none fits."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    for layout in LAYOUTS.values():
        if layout.matches(root):
            return layout
    known = "; ".join(f"{layout.name}: {layout.description}" for layout in LAYOUTS.values())
    raise DatasetError(f"{root}: no benchmark layout recognised (known: {known})")


@dataclass(frozen=True)
class BenchmarkFolder:
    """A test set's folder, its layout and the images it holds."""

    root: Path
    layout: FolderLayout
    images: list[BenchmarkImage]


def scan_benchmark_folder(root: str | os.PathLike, layout: str | None = None) -> BenchmarkFolder:
    """The images of the test set in ``root``, in the layout named by ``layout`` or detected (None)."""
    root = Path(root)
    found = detect_layout(root) if layout is None else get_layout(layout)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    if not found.matches(root):
        raise DatasetError(f"{root}: not in the {found.name} layout ({found.description})")
    return BenchmarkFolder(root, found, found.images(root))
