"""How many secure channel handshakes a node answers: a flood of Inits must neither fill
its memory with half-made channels nor take the CPU (each answer costs Diffie-Hellman and a
signature) from the traffic of the channels it has, nor keep others' handshakes out. A
source is what node/sources.py says sent the Init."""

from __future__ import annotations

import logging
import time
from collections import Counter

from appliance.limits.budgets import Limits
from appliance.limits.rate import KeyedBuckets, TokenBucket
from appliance.node.lograte import LogRate

log = logging.getLogger(__name__)

PER_SOURCE_SHARE = 8  # one source may hold this fraction of the handshakes in progress
LOG_EVERY = 60.0


class HandshakeBudget:
    """Answers Inits within rates (overall, per source) and a share of the handshakes in
    progress per source. When all `handshakes_in_progress` are taken, the oldest half-made
    one is given up for the new one: a real initiator answers within a round trip, so the
    oldest is the one least likely to finish, and a flood cannot hold every slot."""

    def __init__(self, limits: Limits, counters: Counter, clock=None):
        self.limits = limits
        self.counters = counters
        self._clock = clock or time.monotonic
        self.in_progress: Counter = Counter()  # by source
        self._ends: dict = {}  # responder channel end -> its source, oldest first
        self._per_source_cap = max(1, limits.handshakes_in_progress // PER_SOURCE_SHARE)
        self._overall = TokenBucket(limits.handshakes_per_second, self._clock)
        self._per_source = KeyedBuckets(limits.handshakes_per_second_per_source, self._clock)
        self._log = LogRate(log, LOG_EVERY, self._clock)

    def refusal(self, source) -> str | None:
        """Why an Init from `source` is not answered now, or None (then call `started`)."""
        if self.in_progress[source] >= self._per_source_cap:
            why = f"{self._per_source_cap} handshakes in progress from one source"
        elif not self._per_source.take(source):
            why = f"over {self.limits.handshakes_per_second_per_source:g} handshakes a second from one source"
        elif not self._overall.take():
            why = f"over {self.limits.handshakes_per_second:g} handshakes a second (handshakes_per_second)"
        else:
            return None
        self.counters["handshakes_refused"] += 1
        self._log.warning(None, "refusing secure channel handshakes: %s", why)
        return f"busy: {why}; try again later"

    @property
    def total(self) -> int:
        return len(self._ends)

    def started(self, source, end) -> None:
        """`end` (with `fail(exc)`) answers an Init from `source`."""
        if self.total >= self.limits.handshakes_in_progress:
            oldest = next(iter(self._ends))
            self.counters["handshakes_evicted"] += 1
            self._log.warning("evicted", "giving up a half-made secure channel handshake for a new one: "
                              "%d in progress (handshakes_in_progress)", self.total)
            oldest.fail(HandshakeEvicted("the handshake was given up for newer ones (too many in progress)"))
            self.finished(oldest)  # in case failing it did not
        self._ends[end] = source
        self.in_progress[source] += 1

    def finished(self, end) -> None:
        source = self._ends.pop(end, _NOT_COUNTED)
        if source is _NOT_COUNTED:
            return
        self.in_progress[source] -= 1
        if self.in_progress[source] <= 0:
            del self.in_progress[source]


class HandshakeEvicted(Exception):
    """A half-made handshake given up for newer ones."""


_NOT_COUNTED = object()
