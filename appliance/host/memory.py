"""Give memory the node freed back to the system.

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


def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    return trim


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
