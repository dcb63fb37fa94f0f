"""End-to-end liveness of the routes portal streams run over.

Link liveness (liveness.py) finds a dead neighbour. A stream through a relay also depends on
a node further away: when the far node dies, the relay drops its link to it, but our link to
the relay lives on and an idle stream would wait forever. So every tick the streams are
grouped by their route to the far node (the stream's remote route without its last hop, the
far stream's own address), and a group of which no stream heard anything since the last tick
sends a route probe to that node's `echo` (wire/probe.py). A node on the way that no longer
has the next hop (the relay whose link to the far node closed) answers "unreachable", and
the group is reset at once.

A probe that gets no answer changes nothing: on a slow link the answer may wait behind a
window of data for minutes, and a hop that silently vanished is closed by its neighbour's
link liveness within that node's link timeout, after which probes are answered. Streams over
a secure channel are probed along the channel's own route, which the nodes on the way can
read. Busy streams cost nothing; idle ones one small message per far node per tick.
"""

from __future__ import annotations

import logging
import os


from appliance.node.message import LocalMessage
from appliance.node.transport.tcp import TcpConnection
from appliance.node.worker import Worker
from appliance.stream.state import State
from appliance.wire import probe
from appliance.wire.address import Address, route_text

log = logging.getLogger(__name__)

ECHO = Address.local("echo")
TOKEN_TICKS = 12  # an answer to a probe this many ticks old no longer counts


class RouteWatch(Worker):
    """`streams()` gives the node's portal streams (with `remote_route`, `heard`, `closed`,
    `state`, `tick` and `abort`); `route_dead(route)` hears of a route found broken."""

    def __init__(self, node, streams, interval: float, route_dead=None):
        self.node = node
        self.address = Address.random_local()
        self.interval = interval
        self._streams = streams
        self._route_dead = route_dead
        self._tokens: dict = {}  # probe token -> (route, tick it was sent at)
        self._ticks = 0
        node.register(self)
        self._timer = node.clock.every(interval, self._tick)

    def _tick(self) -> None:
        """In the hub: it never waits."""
        self._ticks += 1
        groups: dict = {}
        for stream in list(self._streams()):
            stream.tick(self.interval)
            if stream.closed or stream.state.state is State.CLOSED:
                continue  # ending (writing out what it has): nothing to watch
            route = stream.remote_route[:-1]
            if route:
                groups.setdefault(route, []).append(stream)
        for route, streams in groups.items():
            heard = False
            for stream in streams:
                heard, stream.heard = heard or stream.heard, False
            if heard:
                continue
            path = self._plain_path(route)
            if path is None:
                continue
            token = os.urandom(probe.TOKEN_SIZE)
            self._tokens[token] = (route, self._ticks)
            self.node.route(LocalMessage(path + (ECHO,), (self.address,), probe.encode_probe(token)))
        oldest = self._ticks - TOKEN_TICKS
        self._tokens = {t: (r, n) for t, (r, n) in self._tokens.items() if n > oldest and r in groups}

    def _plain_path(self, route: tuple):
        """The route to probe for streams on `route`, or None when link liveness covers it
        (the far node is our neighbour) or the path cannot be read on the way."""
        end = getattr(self.node.workers.get(route[0]), "end", None)
        if end is not None:  # a secure channel's encryptor: probe the channel's own route
            route = end.remote_route[:-1]
        first = self.node.workers.get(route[0]) if route else None
        if not isinstance(first, TcpConnection):
            return None  # gone, or a channel inside a channel: its own checks cover it
        return None if len(route) == 1 else route

    def handle(self, msg: LocalMessage) -> None:
        answer = probe.decode_answer(msg.payload)
        if answer is None:
            return
        reachable, token = answer
        sent = self._tokens.pop(token, None)
        if sent is None or reachable:
            return
        route = sent[0]
        streams = [s for s in list(self._streams()) if not s.closed and s.remote_route[:-1] == route]
        self.node.counters["portal_routes_dead"] += 1
        log.warning("the route %s is broken on the way: resetting %d portal streams over it",
                    route_text(route), len(streams))
        for stream in streams:  # a Disconnect too: should the route work after all, the peer hears it
            stream.abort()
        if self._route_dead is not None:
            self._route_dead(route)

    def stop(self) -> None:
        self._timer.stop()
        self.node.unregister(self.address)
