"""Link liveness: heartbeats on idle node-to-node links, and dead links found and closed.

TCP alone does not notice a peer that vanished without a FIN or RST, or a middlebox that
silently drops a live connection: its keepalive takes many minutes. So, on one hub timer for
all the links of a transport, ticking every `min(2.5 s, timeout / 3)`:
- each link that sent nothing since the last tick sends a heartbeat (an empty frame);
- a link that received nothing for the node's whole `timeout` is closed: the peer vanished,
  or a middlebox drops the connection (10-15 s with the default of 15 s);
- so is a link whose writer has bytes queued and made no progress for four times `timeout`
  (none went to the kernel, and the kernel sent none of what it holds): its peer stopped
  reading (it sends heartbeats, so it looks alive). Four times, because on a slow link the
  progress comes in steps: a middlebox that reads 64 KB at a time at 64 kbit/s moves nothing
  for 8 s and more.
Whatever rides on a closed link (secure channels, relays, portal streams) hears of it at once
and is rebuilt. A node sends something at least every 5 s on every link (two ticks), so a
timeout of 10 s or more tolerates any peer; a shorter one needs its peers set as short.
"""

from __future__ import annotations

import logging

import gevent

from appliance.node.clock import Clock
from appliance.node.errors import ConnectionClosed

log = logging.getLogger(__name__)

DEFAULT_LINK_TIMEOUT = 15.0
MAX_TICK = 2.5  # a link that sent nothing for a tick heartbeats: peers' frames are <= 5 s apart
HEARTBEAT = b"\x00\x00\x00\x00"  # a frame with an empty body
STUCK_FACTOR = 4  # a slow link's progress comes in steps (a middlebox reads 64 KB at a time)


class LinkMonitor:
    """Watches `connections()`: TcpConnections, with their `connected`, `heard`, `spoke`,
    `silent_ticks`, `stuck_ticks` and `sent_mark`, a `writer`, and `drop(sock)`."""

    def __init__(self, connections, counters, timeout: float = DEFAULT_LINK_TIMEOUT, check=None,
                 clock: Clock | None = None):
        self.timeout = timeout
        self._check = check  # check(conn): True when a budget closed conn
        self.interval = min(MAX_TICK, timeout / 3)
        # silent for this many whole ticks: between `timeout` minus a tick and `timeout`
        self.dead_after = max(2, int(timeout / self.interval + 1e-9) - 1)
        self._connections = connections
        self._counters = counters
        self._timer = (clock or Clock()).every(self.interval, self._tick)

    def _tick(self) -> None:
        """Runs in the hub: it never waits, and drops dead links in a greenlet of their own."""
        for conn in list(self._connections()):
            if not conn.connected:
                continue  # a persistent connection dialling again
            if self._check is not None and self._check(conn):
                continue
            if conn.heard:
                conn.heard, conn.silent_ticks = False, 0
            else:
                conn.silent_ticks += 1
            writer = conn.writer
            progress = writer.progress()
            if writer.idle or progress != conn.sent_mark:
                conn.stuck_ticks, conn.sent_mark = 0, progress
            else:
                conn.stuck_ticks += 1
            if conn.silent_ticks >= self.dead_after or conn.stuck_ticks >= STUCK_FACTOR * self.dead_after:
                silent = conn.silent_ticks >= self.dead_after
                self._counters["links_dead"] += 1
                log.warning("link to %s is dead: %s for %.0f s", conn.peer,
                            "nothing received" if silent else "the peer reads nothing",
                            (1 if silent else STUCK_FACTOR) * self.dead_after * self.interval)
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
        self._timer.stop()
