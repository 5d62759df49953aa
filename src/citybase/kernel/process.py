"""Process-level tuning that every citybase process applies at start.

glibc's malloc gives each thread that contends for the heap an arena of its own (up to 8 × cores). A serving
process runs a pool of request threads plus the relay and consumers; freed memory stays scattered over
those arenas and is rarely returned, so the resident size creeps up for hours under a steady load
(bench/memory.py: about +1.2 MB/min on SQLite with the default, flat with two arenas). Two arenas keep the
contention low for a GIL-bound Python process and the memory flat."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger("citybase.kernel")
M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)
ARENAS = 2


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas (unless MALLOC_ARENA_MAX is set, which glibc honours itself); True when
    applied. Does nothing on a C library without mallopt (musl, macOS)."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(M_ARENA_MAX, arenas) == 1
    if not ok:
        log.debug("mallopt(M_ARENA_MAX, %d) was refused", arenas)
    return ok
