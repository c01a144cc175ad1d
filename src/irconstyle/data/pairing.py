"""Finding image files and pairing degraded with clean ones by a key taken from each file name.

The one pairing of the package: :mod:`irconstyle.data.layouts` describes where each distribution keeps its
files and pairs them here; the datasets of :mod:`irconstyle.data.datasets` read the pairs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from irconstyle.data.io import IMAGE_EXTENSIONS


class DatasetError(ValueError):
    """A dataset folder or pairing problem; the message names the folder or files."""


def list_images(folder: str | os.PathLike, *, recursive: bool = False) -> list[Path]:
    """Image files in a folder (sorted; hidden files skipped); an error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder")
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    images = sorted(
        path for path in candidates
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file() and not path.name.startswith(".")
    )
    if not images:
        raise DatasetError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)}){' in any subfolder' * recursive}")
    return images


@dataclass(frozen=True)
class PairingRule:
    """How degraded (LQ) and clean (GT) files are matched: by a key taken from each file's stem.

    Each pattern must match the whole stem; the key is its group ``key`` (or group 1). Many LQ files may
    share one GT (RESIDE OTS, Rain14000); two GT files with the same key are an error.
    """

    lq_pattern: str = r"(?P<key>.+)"
    gt_pattern: str = r"(?P<key>.+)"

    def key(self, path: Path, side: str) -> str | None:
        match = re.fullmatch(self.lq_pattern if side == "lq" else self.gt_pattern, path.stem)
        if match is None:
            return None
        return match.group("key") if "key" in match.re.groupindex else match.group(1)


SAME_STEM = PairingRule()
"""``rain-001.png`` pairs with ``rain-001.png``: the usual input/target layout."""

ID_BEFORE_UNDERSCORE = PairingRule(lq_pattern=r"(?P<key>[^_]+)_.*")
"""``0001_0.8_0.2.jpg`` (and ``1_7.jpg``) pair with ``0001.png`` (``1.jpg``): RESIDE OTS/SOTS, Rain14000."""


@dataclass(frozen=True)
class ImagePair:
    """A degraded image and its clean target."""

    lq: Path
    gt: Path


def _name_files(paths: Sequence[Path], limit: int = 5) -> str:
    shown = ", ".join(str(path) for path in paths[:limit])
    return shown + (f" (and {len(paths) - limit} more)" if len(paths) > limit else "")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' * (number != 1)}"


def pair_folders(
    lq_dir: str | os.PathLike, gt_dir: str | os.PathLike, rule: PairingRule = SAME_STEM
) -> list[ImagePair]:
    """Pair every image in ``lq_dir`` with one in ``gt_dir`` by ``rule``; unmatched files are an error."""
    return pair_files(list_images(lq_dir), list_images(gt_dir), rule, lq_where=lq_dir, gt_where=gt_dir)


def pair_files(
    lq_files: Sequence[Path],
    gt_files: Sequence[Path],
    rule: PairingRule = SAME_STEM,
    *,
    lq_where: str | os.PathLike,
    gt_where: str | os.PathLike,
    unused_gt_allowed: bool = False,
) -> list[ImagePair]:
    """Pair every degraded file with one clean file by ``rule``; a file of either side left without a partner
    is an error naming its folder (``lq_where``, ``gt_where``), the first such files and how many there are.
    ``unused_gt_allowed``: clean files without a degraded one are skipped instead (a clean folder shared by
    several splits, as HIDE's ``GT/``)."""
    gt_by_key: dict[str, Path] = {}
    for path in gt_files:
        key = rule.key(path, "gt")
        if key is None:
            raise DatasetError(f"{path}: name does not match the clean-image pattern {rule.gt_pattern!r}")
        if key in gt_by_key:
            raise DatasetError(f"{gt_by_key[key]} and {path} both have the pairing key {key!r}")
        gt_by_key[key] = path
    pairs, unmatched, used = [], [], set()
    for path in lq_files:
        key = rule.key(path, "lq")
        if key is None or key not in gt_by_key:
            unmatched.append(path)
            continue
        used.add(key)
        pairs.append(ImagePair(path, gt_by_key[key]))
    if unmatched:
        raise DatasetError(
            f"no clean image in {gt_where} for {_count(len(unmatched), 'degraded image')}: {_name_files(unmatched)}"
        )
    orphans = [path for key, path in gt_by_key.items() if key not in used]
    if orphans and not unused_gt_allowed:
        raise DatasetError(
            f"no degraded image in {lq_where} for {_count(len(orphans), 'clean image')}: {_name_files(orphans)}"
        )
    return pairs
