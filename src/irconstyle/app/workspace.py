"""The server's files: uploaded photos, their previews and the restored results, in one temporary folder that
is removed when the server stops."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from irconstyle.atomic import atomic_write
from irconstyle.data.io import float_to_image, image_to_float

TEMP_PREFIX = "irconstyle-serve-"


@dataclass
class Upload:
    """One uploaded photo, checked readable, with its preview and what the detector said about it."""

    id: str
    name: str
    path: Path
    preview: Path
    width: int
    height: int
    bit_depth: int
    detection: dict | None = None
    detection_note: str | None = None
    notes: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.monotonic)
    job_ids: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {
            "id": self.id, "name": self.name, "width": self.width, "height": self.height,
            "bit_depth": self.bit_depth, "megapixels": round(self.width * self.height / 1e6, 2),
            "preview": f"/api/uploads/{self.id}/preview", "detection": self.detection,
            "detection_note": self.detection_note, "notes": self.notes,
        }


class Workspace:
    """A per-server temporary folder (``uploads/``, ``previews/``, ``results/``) and the uploads in it.

    At most ``keep_uploads`` photos are kept: adding one more removes the oldest that no unfinished job needs,
    with its results. :meth:`close` removes the folder.
    """

    def __init__(self, parent: str | os.PathLike | None = None, *, keep_uploads: int = 64) -> None:
        remove_abandoned_workspaces(Path(parent or tempfile.gettempdir()))
        self.root = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=parent))
        for folder in ("uploads", "previews", "results"):
            (self.root / folder).mkdir()
        self.keep_uploads = keep_uploads
        self._uploads: dict[str, Upload] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def new_id(self) -> str:
        with self._lock:
            return f"u{next(self._ids)}"

    def upload_path(self, upload_id: str) -> Path:
        return self.root / "uploads" / f"{upload_id}.bin"

    def preview_path(self, key: str) -> Path:
        return self.root / "previews" / f"{key}.png"

    def result_path(self, job_id: str) -> Path:
        return self.root / "results" / f"{job_id}.png"

    def add(self, upload: Upload, busy: set[str]) -> list[Upload]:
        """Register ``upload``; returns the uploads evicted to stay within ``keep_uploads`` (their files are gone).
        ``busy``: ids of uploads an unfinished job still reads."""
        with self._lock:
            self._uploads[upload.id] = upload
            evicted = []
            for old in sorted(self._uploads.values(), key=lambda item: item.created):
                if len(self._uploads) <= self.keep_uploads:
                    break
                if old.id != upload.id and old.id not in busy:
                    evicted.append(self._uploads.pop(old.id))
        for old in evicted:
            self._delete_files(old)
        return evicted

    def get(self, upload_id: str) -> Upload | None:
        return self._uploads.get(upload_id)

    def remove(self, upload_id: str) -> Upload | None:
        with self._lock:
            upload = self._uploads.pop(upload_id, None)
        if upload is not None:
            self._delete_files(upload)
        return upload

    def _delete_files(self, upload: Upload) -> None:
        upload.path.unlink(missing_ok=True)
        upload.preview.unlink(missing_ok=True)
        for job_id in upload.job_ids:
            self.result_path(job_id).unlink(missing_ok=True)
            self.preview_path(job_id).unlink(missing_ok=True)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def remove_abandoned_workspaces(parent: Path) -> None:
    """Remove the folders of servers that were killed before they could clean up (their process is gone)."""
    for folder in parent.glob(f"{TEMP_PREFIX}*-*"):
        pid = folder.name[len(TEMP_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _process_exists(int(pid)) and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def write_preview(path: Path, pixels: np.ndarray, max_side: int) -> None:
    """An 8-bit PNG of ``pixels`` for the page, shrunk to at most ``max_side`` pixels on its longer side."""
    if pixels.dtype != np.uint8:
        pixels = float_to_image(image_to_float(pixels), 8)
    image = Image.fromarray(pixels)
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    with atomic_write(path, suffix=".png") as temporary:
        image.save(temporary, format="PNG", compress_level=1)
