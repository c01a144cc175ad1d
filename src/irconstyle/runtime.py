"""Process-wide settings that make CPU inference and training faster.

Large tensors are allocated and freed hundreds of times per forward. glibc hands every block above its mmap
threshold back to the kernel when it is freed, so the next forward page-faults the same memory in again and
the kernel zeroes it, a large part of a CPU forward's time (``benchmarks/inference.py`` compares both).
:func:`retain_freed_memory` lets glibc keep freed memory for reuse instead. Peak memory stays what the largest
forward needs (a little more where freed blocks of different sizes fragment the heap); it is just not given
back between forwards.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

# mallopt(3) parameters (glibc malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_GLIBC_DEFAULTS = {_M_TRIM_THRESHOLD: 128 * 1024, _M_MMAP_MAX: 65536}
_RETAINING = {_M_TRIM_THRESHOLD: 2**31 - 1, _M_MMAP_MAX: 0}


@functools.lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc (mallopt exists and means what we use it for), else None."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def retain_freed_memory(enabled: bool = True) -> bool:
    """Keep freed memory inside the process for reuse (``enabled``) or restore glibc's defaults.

    Returns True when the setting was applied, False where the C library is not glibc (then nothing changes).
    It affects the whole process; the ``irconstyle`` command turns it on for its own process.
    """
    libc = _glibc()
    if libc is None:
        return False
    for parameter, value in (_RETAINING if enabled else _GLIBC_DEFAULTS).items():
        if libc.mallopt(parameter, value) != 1:
            return False
    return True
