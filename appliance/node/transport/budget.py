"""Budgets on what strangers can make the TCP transport hold: connections per listener and
per source address, bytes of frames started and not finished, and accepted connections
that never route a message. Each refusal or close is counted and logged, and touches only
the connection that went over: never a link that carries others' traffic."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import Counter

import gevent

from appliance.limits.budgets import Limits
from appliance.node.lograte import LogRate

log = logging.getLogger(__name__)

# A started frame must keep arriving: no byte of it for `frame_deadline` closes the
# connection, and so does taking longer than `frame_deadline` plus its length at this rate
# (so 64 kbit/s links finish their 256 KiB portal chunks, a slowloris does not hold one forever).
MIN_FRAME_RATE = 8192  # bytes/s
LOG_EVERY = 60.0  # seconds between two log lines about the same source, or the same budget


def source_address(ip: str) -> str:
    """What counts as one source: an IPv4 address, or an IPv6 /64 (one host has a whole
    /64 to pick addresses from)."""
    if ":" not in ip:
        return ip
    try:
        address = ipaddress.IPv6Address(ip.split("%")[0])
    except ValueError:
        return ip
    if address.ipv4_mapped is not None:  # an IPv4 peer of a dual-stack listener
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))


class ConnectionBudget:
    """Keeps the transport's counts. Connections it is told about have `source` (listener,
    remote IP) when accepted, `decoder` (its `incomplete` and `claimed` bytes),
    `partial_since` and `partial_progress_at`, `routed`, `admitted_at` and `drop(sock)`.
    Its clock is monotonic: a wall clock stepped back or forth must not close connections."""

    def __init__(self, limits: Limits, counters: Counter, clock=None):
        self.limits = limits
        self.counters = counters
        self._clock = clock or time.monotonic
        self.per_listener: Counter = Counter()
        self.per_source: Counter = Counter()
        self.incomplete = 0  # bytes of partial frames, all connections together
        self._partial: dict = {}  # connection -> the bytes of partial frame it holds
        self._log = LogRate(log, LOG_EVERY, self._clock)

    def now(self) -> float:
        return self._clock()

    # --- accepting ----------------------------------------------------------------------------
    def admit(self, listener, ip: str, connections) -> bool:
        """May the listener keep a new connection from `ip`? When the listener (or the
        source) is full, the connection of it worth least gives way: of those that carry
        nothing (no relay registration, secure channel or portal stream), one that never
        routed a message, else one that never sent through a relay name here (a peer that
        only talks to this node's services), else the one least recently active (a message
        from it, or to it). Only when every one carries something is the new one refused."""
        if self.per_source[ip] >= self.limits.connections_per_source:
            pool = [c for c in connections if c.source == (listener, ip)]
            why = f"it has {self.limits.connections_per_source} connections open (connections_per_source)"
        elif self.per_listener[listener] >= self.limits.connections_per_listener:
            pool = [c for c in connections if c.source is not None and c.source[0] is listener]
            why = f"the listener has {self.limits.connections_per_listener} connections (connections_per_listener)"
        else:
            return True
        idle = [c for c in pool if c.connected and not c.carries()]
        if idle:
            victim = min(idle, key=lambda c: (c.routed, c.relayed, c.active_at))
            self.counters["connections_evicted"] += 1
            self._log.warning("evicted", "closing the connection from %s for a new one from %s: %s; it carries "
                              "nothing and %s", victim.peer, ip, why,
                              f"was idle for {self._clock() - victim.active_at:.0f} s" if victim.routed
                              else "never routed a message")
            victim.drop(victim.sock)
            return True
        self.counters["connections_refused"] += 1
        self._log.warning(ip, "refusing connections from %s: %s, each carrying something", ip, why)
        return False

    def admitted(self, conn) -> None:
        listener, ip = conn.source
        self.per_listener[listener] += 1
        self.per_source[ip] += 1
        conn.admitted_at = self._clock()

    def forget(self, conn) -> None:
        """The connection's socket is gone: it holds nothing any more."""
        self.incomplete -= self._partial.pop(conn, 0)
        conn.partial_since = None
        conn.decoder.clear()
        if conn.source is not None:
            listener, ip = conn.source
            conn.source = None
            for counts, key in ((self.per_listener, listener), (self.per_source, ip)):
                counts[key] -= 1
                if counts[key] <= 0:
                    del counts[key]

    # --- partial frames -----------------------------------------------------------------------
    def incomplete_changed(self, conn, completed: bool) -> None:
        """After a receive on `conn` (that `completed` frames, or not): count what its decoder
        holds of an unfinished frame; over the node's budget, close the connection whose
        partial frame began first (a frame in progress on a busy link began a moment ago)."""
        held = conn.decoder.incomplete
        before = self._partial.pop(conn, 0)
        if held:
            self._partial[conn] = held
            now = self._clock()
            if held != before or completed:
                conn.partial_progress_at = now
            if conn.partial_since is None or completed:  # a new frame began in this read
                conn.partial_since = now
        else:
            conn.partial_since = None
        self.incomplete += held - before
        if self.incomplete > self.limits.incomplete_frame_bytes:
            victim = min(self._partial, key=lambda c: c.partial_since)
            self.counters["incomplete_frames_closed"] += 1
            self._log.warning("incomplete", "closing the connection from %s: partial frames hold %d bytes, over the "
                              "node's budget of %d (incomplete_frame_bytes); its own began %.1f s ago", victim.peer,
                              self.incomplete, self.limits.incomplete_frame_bytes,
                              self._clock() - victim.partial_since)
            victim.drop(victim.sock)
            self.forget(victim)  # already, unless it was closed before: then it must not count again

    # --- at each liveness tick ----------------------------------------------------------------
    def check(self, conn) -> bool:
        """Close `conn` now if it is over a budget (logged, rate-limited); True if so."""
        why = self._over(conn, self._clock())
        if why is None:
            return False
        counter, reason = why
        self.counters[counter] += 1
        self._log.warning(counter, "closing the connection %s %s: %s", "to" if conn.outgoing else "from",
                          conn.peer, reason)
        gevent.spawn(conn.drop, conn.sock)
        return True

    def _over(self, conn, now: float) -> tuple | None:
        """(counter, reason) when `conn` is over a budget, else None."""
        if conn.partial_since is not None:
            allowed = self.limits.frame_deadline + conn.decoder.claimed / MIN_FRAME_RATE
            if now - conn.partial_progress_at >= self.limits.frame_deadline:
                return "frames_timed_out", f"no byte of a started frame for {self.limits.frame_deadline:g} s (frame_deadline)"
            if now - conn.partial_since >= allowed:
                return "frames_timed_out", f"a frame not completed within {allowed:.0f} s (frame_deadline and 64 kbit/s)"
        if conn.source is not None and not conn.routed and now - conn.admitted_at >= self.limits.idle_timeout:
            return "idle_connections_closed", f"no message within {self.limits.idle_timeout:g} s of connecting (idle_timeout)"
        if conn.spoke:  # a message was written to it since the last tick: in use, as much as one it sent
            conn.active_at = now
        if conn.source is not None and conn.routed and not conn.relayed and not conn.carries() \
                and now - conn.active_at >= self.limits.link_idle_timeout:
            return "idle_links_closed", (f"it carries nothing, never used a relay, and routed no message for "
                                         f"{self.limits.link_idle_timeout:g} s (link_idle_timeout)")
        return None
