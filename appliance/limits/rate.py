"""Token buckets: how many of something per second, with bursts, on an injected clock."""

from __future__ import annotations

from typing import Callable


class TokenBucket:
    """`rate` tokens a second, holding at most `burst` (one second's worth by default)."""

    def __init__(self, rate: float, clock: Callable[[], float], burst: float | None = None):
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._clock = clock
        self._tokens = self.burst
        self._at = clock()

    def take(self) -> bool:
        """Spend one token if there is one."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class KeyedBuckets:
    """A bucket per key (a source), forgetting the full ones when there are too many: a flood
    of distinct keys costs bounded memory, and a forgotten key only gets a fresh bucket."""

    def __init__(self, rate: float, clock: Callable[[], float], max_keys: int = 4096):
        self.rate = rate
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict = {}

    def take(self, key) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._buckets.clear()
            bucket = self._buckets[key] = TokenBucket(self.rate, self._clock)
        return bucket.take()
