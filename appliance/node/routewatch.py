"""End-to-end liveness of the routes portal streams run over.

Link liveness (liveness.py) finds a dead neighbour. A stream through a relay also depends on
a node further away: when the far node dies, the relay drops its link to it, but our link to
the relay lives on and an idle stream would wait forever. So every tick, the streams are
grouped by their route to the far node (the stream's remote route without its last hop, the
far stream's own address); a group of which no stream heard anything since the last tick
sends one `echo` request to that node. A group whose request goes unanswered for a whole tick
is reset: its far node is gone (10-15 s after its last message, with the default 15 s link
timeout). Busy streams cost nothing; idle ones cost one small message per far node per tick.

Slow routes must not look dead: at each tick every receiving stream grants back the credit
it owes (so the sender of a slow transfer keeps hearing from it), and a request still queued
behind our own data on our first link is not yet counted as unanswered. What remains is a
stream whose reader has stopped, behind a queue in a slow link beyond our neighbour.
"""

from __future__ import annotations

import logging
import os

import gevent

from appliance.node.message import LocalMessage
from appliance.node.tcp import TcpConnection
from appliance.node.worker import Worker
from appliance.wire.address import Address, route_text

log = logging.getLogger(__name__)

UNANSWERED_TICKS = 1
ECHO = Address.local("echo")


class RouteWatch(Worker):
    """`streams()` gives the node's portal streams (with `remote_route`, `heard`, `tick` and
    `link_lost`); `route_dead(route)` hears of a far node found gone."""

    def __init__(self, node, streams, interval: float, route_dead=None):
        self.node = node
        self.address = Address.random_local()
        self._streams = streams
        self._route_dead = route_dead
        self._unanswered: dict = {}  # route to a far node -> ticks its probes went unanswered
        self._tokens: dict = {}  # probe payload -> route
        node.register(self)
        self.interval = interval
        self._timer = gevent.get_hub().loop.timer(interval, interval)
        self._timer.start(self._tick)

    def _tick(self) -> None:
        """In the hub: it never waits; resets happen in a greenlet of their own."""
        groups: dict = {}
        for stream in list(self._streams()):
            stream.tick(self.interval)
            route = stream.remote_route[:-1]
            if route and not self._adjacent(route):
                groups.setdefault(route, []).append(stream)
        unanswered, self._unanswered = self._unanswered, {}
        for route, streams in groups.items():
            heard = False
            for stream in streams:
                heard, stream.heard = heard or stream.heard, False
            if heard:
                continue
            ticks = unanswered.get(route, 0)
            if ticks and self._queued_on_first_link(route):
                self._unanswered[route] = ticks  # our request has not even left: wait
                continue
            if ticks >= UNANSWERED_TICKS:
                gevent.spawn(self._lost, route, streams)
                continue
            self._unanswered[route] = ticks + 1
            token = os.urandom(8)
            self._tokens[token] = route
            self.node.route(LocalMessage(route + (ECHO,), (self.address,), token))
        # an answer to any request of a route still waiting counts, however late
        self._tokens = {t: r for t, r in self._tokens.items() if r in self._unanswered}

    def _adjacent(self, route: tuple) -> bool:
        """A route that is one TCP connection: its far node is our neighbour, which link
        liveness watches already."""
        return len(route) == 1 and isinstance(self.node.workers.get(route[0]), TcpConnection)

    def _queued_on_first_link(self, route: tuple) -> bool:
        writer = getattr(self.node.workers.get(route[0]), "writer", None)
        return writer is not None and not writer.idle

    def handle(self, msg: LocalMessage) -> None:
        route = self._tokens.pop(msg.payload, None)
        if route is not None:
            self._unanswered.pop(route, None)

    def _lost(self, route: tuple, streams: list) -> None:
        self.node.counters["portal_routes_dead"] += 1
        log.warning("the node at %s does not answer: resetting %d portal streams through it",
                    route_text(route), len(streams))
        for stream in streams:
            stream.link_lost(None)
        if self._route_dead is not None:
            self._route_dead(route)

    def stop(self) -> None:
        self._timer.close()
        self.node.unregister(self.address)
