"""Benchmark folders as they are distributed: which layout a folder has, and the images it holds.

Each layout turns the folder the user names into :class:`BenchmarkImage` items (a name unique in the set, the
degraded file or None for a clean-only set, the clean file). :func:`detect_layout` finds the layout from the
files present, trying :data:`LAYOUTS` in order; :func:`scan_benchmark_folder` lists a folder's images.
:data:`BENCHMARKS` names the public datasets by the layouts they come in. Evaluation and the training and
validation datasets all read folders through this module. Nothing is renamed or copied: every file is read
where it lies.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from irconstyle.data.io import IMAGE_EXTENSIONS
from irconstyle.data.pairing import (
    ID_BEFORE_UNDERSCORE,
    DatasetError,
    ImagePair,
    PairingRule,
    list_images,
    pair_files,
    pair_folders,
)


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


# --- two sibling folders paired by file stem: input/ + target/ (the Restormer / MPRNet downloads of Rain100H/L,
# Test100/1200/2800, GoPro, HIDE, RealBlur) and lq/ + gt/ (`irconstyle degrade`, BasicSR's paired folders)


Matches = Callable[[Path], bool]
Images = Callable[[Path], list[BenchmarkImage]]


def _sibling_folders(lq_name: str, gt_name: str) -> tuple[Matches, Images]:
    """The ``matches`` and ``images`` of a layout of two folders, ``lq_name/<name>`` against ``gt_name/<name>``."""

    def matches(root: Path) -> bool:
        return (root / lq_name).is_dir() and (root / gt_name).is_dir()

    def images(root: Path) -> list[BenchmarkImage]:
        return [BenchmarkImage(pair.lq.name, pair.gt, pair.lq) for pair in pair_folders(root / lq_name, root / gt_name)]

    return matches, images


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


# --- GOPRO_Large (its train or test folder): <sequence>/blur/<frame> against <sequence>/sharp/<frame>; not blur_gamma/


def _gopro_sequences(root: Path) -> list[Path]:
    return [folder for folder in _subfolders(root) if (folder / "blur").is_dir() and (folder / "sharp").is_dir()]


def _gopro_matches(root: Path) -> bool:
    return bool(_gopro_sequences(root))


def _gopro_images(root: Path) -> list[BenchmarkImage]:
    return [
        BenchmarkImage(f"{sequence.name}/{pair.lq.name}", pair.gt, pair.lq)
        for sequence in _gopro_sequences(root)
        for pair in pair_folders(sequence / "blur", sequence / "sharp")
    ]


# --- HIDE as distributed: test/test-close-ups/<name> and test/test-long-shot/<name> against GT/<name>; GT/ also
# holds the training images (train/<name>), which no test image pairs with and which are left out

_HIDE_TEST_FOLDERS = ("test-close-ups", "test-long-shot")


def _hide_test_folders(root: Path) -> list[Path]:
    return [root / "test" / name for name in _HIDE_TEST_FOLDERS if (root / "test" / name).is_dir()]


def _hide_matches(root: Path) -> bool:
    return (root / "GT").is_dir() and bool(_hide_test_folders(root))


def _hide_images(root: Path) -> list[BenchmarkImage]:
    blurred = [path for folder in _hide_test_folders(root) for path in list_images(folder)]
    pairs = pair_files(blurred, list_images(root / "GT"), lq_where=root / "test", gt_where=root / "GT",
                       unused_gt_allowed=True)
    return _named(pairs, root)


# --- Rain14000 (DDN): rainy_image/<id>_<k> (k = 1…14) against ground_truth/<id>


def _rain14000_matches(root: Path) -> bool:
    return (root / "rainy_image").is_dir() and (root / "ground_truth").is_dir()


def _rain14000_images(root: Path) -> list[BenchmarkImage]:
    return _named(pair_folders(root / "rainy_image", root / "ground_truth", ID_BEFORE_UNDERSCORE), root)


# --- CBSD68 with its lossless copies and pre-noised versions side by side: original_png/<n>.png (clean),
# noisy<σ>/<n>.png (noise of level σ already added and saved); original/ holds the same photos as JPEGs under
# other names and is not read

_NOISY = re.compile(r"noisy(\d+)")


def _cbsd68_matches(root: Path) -> bool:
    return (root / "original_png").is_dir()


def _cbsd68_images(root: Path) -> list[BenchmarkImage]:
    return [BenchmarkImage(path.name, path) for path in list_images(root / "original_png")]


def _noisy_matches(root: Path) -> bool:
    return bool(_NOISY.fullmatch(root.name)) and (root.parent / "original_png").is_dir()


def _noisy_images(root: Path) -> list[BenchmarkImage]:
    pairs = pair_folders(root, root.parent / "original_png")
    return [BenchmarkImage(f"{root.name}/{pair.lq.name}", pair.gt, pair.lq) for pair in pairs]


# --- clean images only (CBSD68, Urban100, Kodak24, McMaster): the protocol adds the degradation


def _clean_matches(root: Path) -> bool:
    return bool(_image_files(root))


def _clean_images(root: Path) -> list[BenchmarkImage]:
    return [BenchmarkImage(path.name, path) for path in list_images(root)]


LAYOUTS: dict[str, FolderLayout] = {
    layout.name: layout
    for layout in (
        FolderLayout("gopro", "<sequence>/blur/<frame> + <sequence>/sharp/<frame> (GOPRO_Large/train or /test)",
                     _gopro_matches, _gopro_images),
        FolderLayout("reside", "hazy/<id>_<...> + clear/<id> or gt/<id> (RESIDE SOTS outdoor/indoor)",
                     _reside_matches, _reside_images, center_crop_gt=True),
        FolderLayout("hide", "test/test-close-ups/<name> + test/test-long-shot/<name> against GT/<name> "
                     "(HIDE_dataset; its training images in GT/ are left out)", _hide_matches, _hide_images),
        FolderLayout("input-target", "input/<name> + target/<name> (Restormer's downloads)",
                     *_sibling_folders("input", "target")),
        FolderLayout("lq-gt", "lq/<name> + gt/<name> (`irconstyle degrade`'s output, BasicSR's paired folders)",
                     *_sibling_folders("lq", "gt")),
        FolderLayout("rain14000", "rainy_image/<id>_<k> + ground_truth/<id> (Rain14000)",
                     _rain14000_matches, _rain14000_images),
        FolderLayout("rain100", "rain-NNN + norain-NNN, together or in subfolders (Rain100H/L)",
                     _rain100_matches, _rain100_images),
        FolderLayout("cbsd68-noisy", "a noisyNN/ folder of pre-noised images against ../original_png/ (CBSD68's "
                     "noisy copies, scored as they are)", _noisy_matches, _noisy_images),
        FolderLayout("cbsd68", "original_png/<name> clean images (CBSD68 with its noisyNN/ copies)",
                     _cbsd68_matches, _cbsd68_images, paired=False),
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
    """A dataset's folder, its layout and the images it holds."""

    root: Path
    layout: FolderLayout
    images: list[BenchmarkImage]

    def pairs(self) -> list[ImagePair]:
        """The (degraded, clean) pairs, for a paired dataset; an error for a folder of clean images only."""
        if not self.layout.paired:
            raise DatasetError(
                f"{self.root}: clean images only ({self.layout.name} layout); degrade them on the fly instead"
            )
        return [ImagePair(image.lq, image.gt) for image in self.images if image.lq is not None]


def scan_benchmark_folder(root: str | os.PathLike, layout: str | None = None) -> BenchmarkFolder:
    """The images of the dataset in ``root``, in the layout named by ``layout`` or detected (None)."""
    root = Path(root)
    found = detect_layout(root) if layout is None else get_layout(layout)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    if not found.matches(root):
        raise DatasetError(f"{root}: not in the {found.name} layout ({found.description})")
    return BenchmarkFolder(root, found, found.images(root))


# --- the public datasets by name -----------------------------------------------------------------------


@dataclass(frozen=True)
class Benchmark:
    """A public dataset by name: ``layouts``, the folder layouts it is distributed in (tried in order, so a
    folder in any of them is read as it is), or none for clean images anywhere below its root."""

    description: str
    layouts: tuple[str, ...] = ()
    paired: bool = True


BENCHMARKS: dict[str, Benchmark] = {
    "rain13k": Benchmark("Rain13K training set", ("input-target",)),
    "rain14000": Benchmark("Rain14000 (DDN): 14 rainy images per clean one", ("rain14000",)),
    "rain100h": Benchmark("Rain100H test set", ("input-target", "rain100")),
    "rain100l": Benchmark("Rain100L test set", ("input-target", "rain100")),
    "ots": Benchmark("RESIDE OTS: many hazy images per clean one", ("reside",)),
    "sots-outdoor": Benchmark("RESIDE SOTS outdoor", ("reside",)),
    "gopro": Benchmark("GoPro train or test split", ("input-target", "gopro")),
    "hide": Benchmark("HIDE test set", ("input-target", "hide")),
    "realblur-j": Benchmark("RealBlur-J test set", ("input-target",)),
    "realblur-r": Benchmark("RealBlur-R test set", ("input-target",)),
    "dfwb": Benchmark("DIV2K + Flickr2K + WED + BSD400 clean images, any subfolders", paired=False),
    "cbsd68": Benchmark("CBSD68 clean images (68)", ("cbsd68", "clean"), paired=False),
    "urban100": Benchmark("Urban100 clean images (100)", ("clean",), paired=False),
    "kodak24": Benchmark("Kodak24 clean images (24)", ("clean",), paired=False),
    "mcmaster": Benchmark("McMaster clean images (18)", ("clean",), paired=False),
}
"""Benchmark name -> the layouts it comes in (see docs/datasets.md for the downloads)."""


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called ``name`` (any case; see :data:`BENCHMARKS`)."""
    try:
        return BENCHMARKS[name.lower()]
    except KeyError:
        raise DatasetError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}") from None


def benchmark_folder(name: str, root: str | os.PathLike) -> BenchmarkFolder:
    """``root`` read in the first of benchmark ``name``'s layouts that it has."""
    root = Path(root)
    layouts = [get_layout(layout) for layout in get_benchmark(name).layouts]
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    for layout in layouts:
        if layout.matches(root):
            return BenchmarkFolder(root, layout, layout.images(root))
    expected = " or ".join(layout.description for layout in layouts)
    raise DatasetError(f"{root}: not a {name} folder (expected {expected})")


def benchmark_pairs(name: str, root: str | os.PathLike) -> list[ImagePair]:
    """The (degraded, clean) pairs of the paired benchmark ``name`` stored under ``root`` as distributed."""
    if not get_benchmark(name).paired:
        raise DatasetError(f"{name} has clean images only; use benchmark_images and a DegradedImageDataset")
    return benchmark_folder(name, root).pairs()


def benchmark_images(name: str, root: str | os.PathLike) -> list[Path]:
    """The clean images of the clean-only benchmark ``name`` (DFWB, CBSD68, Urban100, …) under ``root``."""
    benchmark = get_benchmark(name)
    if benchmark.paired:
        raise DatasetError(f"{name} is a paired benchmark; use benchmark_pairs")
    if not benchmark.layouts:
        return list_images(root, recursive=True)
    return [image.gt for image in benchmark_folder(name, root).images]
