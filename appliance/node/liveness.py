"""Link liveness: heartbeats on idle node-to-node links, and dead links found and closed.

TCP alone does not notice a peer that vanished without a FIN or RST, or a middlebox that
silently drops a live connection: its keepalive takes many minutes. So every `timeout / 3`
seconds (one hub timer for all the links of a transport) each link that sent nothing since
the last tick sends a heartbeat (an empty frame), and each link that received nothing for
two ticks in a row is closed: whatever rides on it (secure channels, relays, portal
streams) hears of it at once and is rebuilt. A dead link is thus found 10-15 s after its
last message with the default timeout of 15 s.
"""

from __future__ import annotations

import logging

import gevent

from appliance.node.errors import ConnectionClosed

log = logging.getLogger(__name__)

DEFAULT_LINK_TIMEOUT = 15.0
HEARTBEAT = b"\x00\x00\x00\x00"  # a frame with an empty body
SILENT_TICKS = 2


class LinkMonitor:
    """Watches `connections()`: TcpConnections, with their `connected`, `heard`, `spoke`
    and `silent_ticks`, a `writer`, and `drop(sock)` for a socket found dead."""

    def __init__(self, connections, counters, timeout: float = DEFAULT_LINK_TIMEOUT):
        self.timeout = timeout
        self.interval = timeout / (SILENT_TICKS + 1)
        self._connections = connections
        self._counters = counters
        self._timer = gevent.get_hub().loop.timer(self.interval, self.interval)
        self._timer.start(self._tick)

    def _tick(self) -> None:
        """Runs in the hub: it never waits, and closes dead links in a greenlet of their own."""
        for conn in list(self._connections()):
            if not conn.connected:
                continue  # a persistent connection dialling again
            if conn.heard:
                conn.heard, conn.silent_ticks = False, 0
            else:
                conn.silent_ticks += 1
                if conn.silent_ticks >= SILENT_TICKS:
                    self._counters["links_dead"] += 1
                    log.warning("link to %s is dead: nothing received for %.0f s", conn.peer,
                                conn.silent_ticks * self.interval)
                    gevent.spawn(conn.drop, conn.sock)
                    continue
            if not conn.spoke:
                self._counters["heartbeats_sent"] += 1
                try:
                    conn.writer.write(HEARTBEAT)
                except ConnectionClosed:
                    pass
            conn.spoke = False

    def stop(self) -> None:
        self._timer.close()
