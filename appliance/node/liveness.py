"""Link liveness: heartbeats on idle node-to-node links, and dead links found and closed.

TCP alone does not notice a peer that vanished without a FIN or RST, or a middlebox that
silently drops a live connection: its keepalive takes many minutes. So, on one hub timer for
all the links of a transport, ticking every `min(5 s, timeout / 3)`:
- each link that sent nothing since the last tick sends a heartbeat (an empty frame);
- a link that received nothing for the node's whole `timeout` is closed: the peer vanished,
  or a middlebox drops the connection (10-15 s with the default of 15 s);
- so is a link whose writer has bytes queued and got none of them onto the socket for the
  whole `timeout`: its peer stopped reading (it sends heartbeats, so it looks alive).
Whatever rides on a closed link (secure channels, relays, portal streams) hears of it at once
and is rebuilt. Peers heartbeat at least every 5 s, so any timeout above 10 s tolerates any
peer; a shorter one needs its peers set as short.
"""

from __future__ import annotations

import logging

import gevent

from appliance.node.errors import ConnectionClosed

log = logging.getLogger(__name__)

DEFAULT_LINK_TIMEOUT = 15.0
MAX_HEARTBEAT_INTERVAL = 5.0
HEARTBEAT = b"\x00\x00\x00\x00"  # a frame with an empty body


class LinkMonitor:
    """Watches `connections()`: TcpConnections, with their `connected`, `heard`, `spoke`,
    `silent_ticks`, `stuck_ticks` and `sent_mark`, a `writer`, and `drop(sock)`."""

    def __init__(self, connections, counters, timeout: float = DEFAULT_LINK_TIMEOUT):
        self.timeout = timeout
        self.interval = min(MAX_HEARTBEAT_INTERVAL, timeout / 3)
        # silent for more than this many whole ticks: more than `timeout` minus one tick
        self.dead_after = max(2, round(timeout / self.interval) - 1)
        self._connections = connections
        self._counters = counters
        self._timer = gevent.get_hub().loop.timer(self.interval, self.interval)
        self._timer.start(self._tick)

    def _tick(self) -> None:
        """Runs in the hub: it never waits, and drops dead links in a greenlet of their own."""
        for conn in list(self._connections()):
            if not conn.connected:
                continue  # a persistent connection dialling again
            if conn.heard:
                conn.heard, conn.silent_ticks = False, 0
            else:
                conn.silent_ticks += 1
            writer = conn.writer
            if writer.idle or writer.sent != conn.sent_mark:
                conn.stuck_ticks, conn.sent_mark = 0, writer.sent
            else:
                conn.stuck_ticks += 1
            if conn.silent_ticks >= self.dead_after or conn.stuck_ticks >= self.dead_after:
                reason = "nothing received" if conn.silent_ticks >= self.dead_after else "the peer reads nothing"
                self._counters["links_dead"] += 1
                log.warning("link to %s is dead: %s for %.0f s", conn.peer, reason, self.dead_after * self.interval)
                gevent.spawn(conn.drop, conn.sock)
                continue
            if not conn.spoke:
                self._counters["heartbeats_sent"] += 1
                try:
                    writer.write(HEARTBEAT)
                except ConnectionClosed:
                    pass
            conn.spoke = False

    def stop(self) -> None:
        self._timer.close()
