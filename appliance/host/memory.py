"""Give memory the node freed back to the system, on our schedule rather than glibc's.

glibc maps an allocation above its mmap threshold (128 KiB at first, then whatever it last
unmapped: it depends on the process's history) afresh and gives the heap's top back once
256 KiB of it are free; a portal moves its data in 128-256 KiB buffers, which then cost page
faults on their way through. `tune_allocator` fixes both thresholds above our largest buffer
(a 1 MiB frame), so the heap keeps those pages whatever happened before; what it then holds
is handed back by the trimmer. (Measured: 0.3-0.5 minor faults per MB of encrypted iperf3
once glibc's threshold has grown either way; see docs/PERFORMANCE.md.)

A burst of large receive buffers (a flood of partial frames, thousands of connections at
once) leaves glibc's heap holding their pages after they are freed: the process's RSS would
stay at its peak for good. `malloc_trim` returns the free pages; a timer calls it every
`TRIM_EVERY` seconds, which costs a walk of the heap (a millisecond or so). Elsewhere than
glibc (musl, Windows) there is nothing to do.
"""

from __future__ import annotations

import ctypes
import sys

import gevent

TRIM_EVERY = 10.0
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)
MMAP_THRESHOLD = 4 << 20  # above the largest buffer of the data path: a frame, 1 MiB
TRIM_THRESHOLD = 8 << 20  # free heap top kept between the trimmer's rounds


def _glibc(name: str):
    """A function of the C library when it is glibc's (on Linux), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


def _malloc_trim():
    trim = _glibc("malloc_trim")
    if trim is not None:
        trim.argtypes = [ctypes.c_size_t]
    return trim


def tune_allocator() -> bool:
    """Keep the data path's buffers in the heap (see above); False where there is no glibc."""
    mallopt = _glibc("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


class MemoryTrimmer:
    """While started, returns freed heap pages to the system every `interval` seconds."""

    def __init__(self, interval: float = TRIM_EVERY, trim=None):
        self._trim = trim or _malloc_trim()
        self._timer = None
        if self._trim is not None:
            self._timer = gevent.get_hub().loop.timer(interval, interval)
            self._timer.start(self._trim, 0)

    @property
    def running(self) -> bool:
        return self._timer is not None and self._timer.active

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.close()
