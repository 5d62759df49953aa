"""Process-level tuning that every citybase process applies at start.

glibc's malloc gives each thread that contends for the heap an arena of its own (up to 8 × cores). A serving
process runs a pool of request threads plus the relay and consumers; freed memory stays scattered over
those arenas and is rarely returned, so the resident size creeps up for hours under a steady load
(bench/memory.py: about +1.2 MB/min on SQLite with the default). Two arenas keep the contention low for a
GIL-bound Python process; a trim every ten seconds returns the pages freed inside them.

Why so often: after warm-up the heap holds ~90 MB of free chunks (~2,400 of them, left by the first requests'
transient peak) beside ~95 MB in use. The live memory is flat (malloc's in-use bytes, Python's arenas and
SQLite's own allocator all stay within ±1 MB under load), but the steady churn reuses free chunks all over the
heap and so touches pages the last trim had returned: 6–10 MB a minute. With a trim a minute those resident
free pages swung between 9 and 24 MB and crept up; with one every 10 s they stayed at 10–12 MB (bench/README,
memory section). A trim costs about 1 ms (10 ms the first time)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
import time
from collections.abc import Callable

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


TRIM_EVERY = 10.0  # seconds; see the module's docstring
_trimmer: threading.Thread | None = None
_trimmer_lock = threading.Lock()


def _malloc_trim() -> Callable[[], None] | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


def start_heap_trimmer(interval: float = TRIM_EVERY) -> bool:
    """Hand the heap's free pages back to the system every ``interval`` seconds (glibc's ``malloc_trim``), so
    the resident size follows what the process really holds; one daemon thread per process. True when
    running (glibc only)."""
    global _trimmer
    trim = _malloc_trim()
    if trim is None:
        return False
    with _trimmer_lock:
        if _trimmer is not None and _trimmer.is_alive():
            return True

        def loop() -> None:
            while True:
                time.sleep(interval)
                trim()

        _trimmer = threading.Thread(target=loop, name="citybase-heap-trim", daemon=True)
        _trimmer.start()
    return True
