"""The runtime's time, from one object a node is built with: `now()` (monotonic seconds),
`wall()` (Unix time, for credentials' expiry), sleeps, waits with a timeout, and timers.

Every timeout of the runtime (link liveness, Pong timeout, channel retire, redial and
refresh backoffs) reads and waits on its node's clock, so a test can run them on a
VirtualClock and move time forward instead of sleeping.
"""

from __future__ import annotations

import heapq
import itertools
import time

import gevent
from gevent.event import Event


class Clock:
    """Real time: the monotonic clock (a wall clock stepped back or forth moves no timeout)
    and the hub's timers."""

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        gevent.sleep(seconds)

    def wait(self, event: Event, timeout: float | None) -> bool:
        """Wait until `event` (an Event or AsyncResult) is set or `timeout` passes; whether it is set."""
        event.wait(timeout)
        return event.ready()

    def every(self, interval: float, callback) -> "Timer":
        """Call `callback()` in the hub every `interval` seconds, until the timer is stopped."""
        timer = gevent.get_hub().loop.timer(interval, interval)
        timer.start(callback)
        return Timer(timer.close)

    def later(self, delay: float, callback) -> "Timer":
        """Call `callback()` in the hub once, `delay` seconds from now."""
        timer = gevent.get_hub().loop.timer(max(0.0, delay))
        timer.start(callback)
        return Timer(timer.close)


class Timer:
    def __init__(self, stop):
        self.stop = stop


class VirtualClock(Clock):
    """Time that moves only when a test calls `advance`: the timers due on the way fire in
    order, each followed by a turn of the loop for what it set off (real loopback I/O)."""

    SETTLE = 0.005  # real seconds given to the loop after each firing: loopback I/O is done by then

    def __init__(self, now: float = 1000.0, wall: float | None = None):
        """`wall`: the Unix time at `now` (the real one by default: credentials made outside
        the clock stay valid)."""
        self._now = now
        self._wall_offset = (time.time() if wall is None else wall) - now
        self._timers: list = []  # (due, sequence, interval or None, callback, cancelled flag)
        self._sequence = itertools.count()

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    def sleep(self, seconds: float) -> None:
        self.wait(Event(), seconds)

    def wait(self, event: Event, timeout: float | None) -> bool:
        if timeout is None or event.ready():
            event.wait(timeout)
            return event.ready()
        woken = Event()

        def wake(_event):
            woken.set()

        timer = self.later(timeout, woken.set)
        event.rawlink(wake)
        try:
            woken.wait()
        finally:
            timer.stop()
            event.unlink(wake)
        return event.ready()

    def every(self, interval: float, callback) -> Timer:
        return self._add(self._now + interval, interval, callback)

    def later(self, delay: float, callback) -> Timer:
        return self._add(self._now + max(0.0, delay), None, callback)

    def _add(self, due: float, interval: float | None, callback) -> Timer:
        entry = [due, next(self._sequence), interval, callback, False]
        heapq.heappush(self._timers, entry)

        def stop():
            entry[4] = True
        return Timer(stop)

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, firing every timer due on the way, in order."""
        end = self._now + seconds
        while self._timers and self._timers[0][0] <= end:
            entry = heapq.heappop(self._timers)
            if entry[4]:
                continue
            self._now = max(self._now, entry[0])
            if entry[2] is not None:
                entry[0] += entry[2]
                heapq.heappush(self._timers, entry)
            entry[3]()
            gevent.sleep(self.SETTLE)
        self._now = end
        gevent.sleep(self.SETTLE)
