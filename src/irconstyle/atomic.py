"""Atomic file writes: a file is either the previous version or the complete new one, never a torn one."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path: Path, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; when the block succeeds, flush it and rename it over ``path``.

    A crash, even SIGKILL, leaves the old file or the new one; a failing block leaves no temporary and an
    unchanged target. ``suffix`` ends the temporary name, for writers that choose the format by extension.
    Temporary names match ``.*.tmp*``, so that a cleaner can find those of killed writers.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{suffix}")
    try:
        yield temporary
        _fsync(temporary, os.O_RDONLY)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable
        _fsync(path.parent, os.O_RDONLY | os.O_DIRECTORY)


def check_writable(path: str | os.PathLike) -> Path:
    """Make the folder that will hold ``path`` and create and remove a file in it, so that work which ends by
    writing ``path`` fails before it starts: a one-line ValueError naming ``path`` where it cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except (FileExistsError, NotADirectoryError):
        blocking = next(folder for folder in path.parents if folder.exists())
        raise ValueError(f"{path}: cannot be written ({blocking} is a file, not a folder)") from None
    except OSError as error:
        raise ValueError(f"{path}: cannot be written ({error.strerror or error})") from None
    return path


def _fsync(path: Path, flags: int) -> None:
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
