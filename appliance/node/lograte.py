"""Log lines about what a flood repeats: at most one per key every `every` seconds, each
saying how many like it were left out since. A flood of refusals must not flood the log."""

from __future__ import annotations

import logging
import time


class LogRate:
    def __init__(self, logger: logging.Logger, every: float, clock=None, max_keys: int = 4096):
        self.logger = logger
        self.every = every
        self._clock = clock or time.monotonic
        self._max_keys = max_keys
        self._seen: dict = {}  # key -> [loop time of the last line, lines left out since]

    def log(self, level: int, key, message: str, *args) -> None:
        now = self._clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.every:
            seen[1] += 1
            self.logger.debug(message, *args)
            return
        if seen is None and len(self._seen) >= self._max_keys:
            self._seen.clear()
        left_out = seen[1] if seen is not None else 0
        self._seen[key] = [now, 0]
        if left_out:
            message += f" ({left_out} more like it since the last such line)"
        self.logger.log(level, message, *args)

    def warning(self, key, message: str, *args) -> None:
        self.log(logging.WARNING, key, message, *args)

    def info(self, key, message: str, *args) -> None:
        self.log(logging.INFO, key, message, *args)
