"""An inlet's routes to its outlet, and which one a new client takes.

An inlet may know several routes to the same outlet (one through each relay box the edge
registered at). Each is resolved, cached and checked on its own (node/portals/routecheck.py). A new
client takes, with the default failover policy, the first route in the order given that is
up (a route that failed is checked in the background and preferred again once it answers);
with `balance`, the routes that are up in turn. When none is up it takes the first that is
still connecting; when all are down, none (the inlet refuses the client at once). A
connection stays on the route its outlet answered on.
"""

from __future__ import annotations

from appliance.node.errors import RequestTimeout
from appliance.node.portals.routecheck import RouteCheck
from appliance.node.singleflight import SingleFlight
from appliance.observe.condition import Health

FIRST_HANDSHAKE_TIMEOUT = 2.0  # a secure channel handshake on the way: 2 s, doubling on timeouts...
MAX_HANDSHAKE_TIMEOUT = 10.0  # ...up to this


class InletRoute:
    """One route: `resolve(timeout)` gives its addresses; `links_failed(route)` lets the node
    check the links a route that got no answer runs over (a secure channel whose far end is gone)."""

    def __init__(self, node, name: str, text: str, resolve, links_failed, down_after: float, heard):
        self.node = node
        self.text = text
        self._resolve = resolve
        self._links_failed = links_failed
        self._route = None
        self._resolving = SingleFlight()
        self._handshake_timeout = FIRST_HANDSHAKE_TIMEOUT
        self.opened = 0  # connections its outlet answered over it
        self.check = RouteCheck(node, name, self.resolve_outlet, down_after=down_after, heard=lambda: heard(self),
                                route_failed=self.route_failed)

    @property
    def health(self) -> Health:
        return self.check.condition.health

    def resolve_outlet(self, time_left: float = MAX_HANDSHAKE_TIMEOUT):
        """The route's addresses, reused while its first hop (a TCP connection or a secure
        channel: its only address on this node) is alive, else resolved again; single-flight:
        clients that arrive together share one. `time_left`: how long the asking client may
        still wait."""
        route = self._route
        first = self.node.workers.get(route[0]) if route else None
        if first is not None and not getattr(first, "retired", False):  # a retired channel: resolve again
            return route
        return self._resolving.run(None, lambda: self._resolve_again(time_left))

    def _resolve_again(self, time_left: float):
        """A secure channel handshake on the way gets a short timeout first (the client waits,
        trying again) and a longer one each time it runs out, so a slow path still gets
        through; never longer than the client can still wait."""
        timeout = max(0.1, min(self._handshake_timeout, time_left))
        try:
            self._route = self._resolve(timeout)
        except RequestTimeout:
            if timeout == self._handshake_timeout:
                self._handshake_timeout = min(self._handshake_timeout * 2, MAX_HANDSHAKE_TIMEOUT)
            raise
        self._handshake_timeout = FIRST_HANDSHAKE_TIMEOUT
        return self._route

    def route_failed(self, route) -> None:
        """A Ping or probe over `route` got no answer: resolve again next time, and check the
        links it runs over."""
        if route is None:
            return
        if route is self._route:
            self._route = None
        self._links_failed(route)

    def stop(self) -> None:
        self.check.stop()

    def describe(self, streams=()) -> dict:
        """`streams`: the inlet's, to count those open over this route."""
        return {"route": self.text, **self.check.condition.describe(), "route_rtt": self.check.rtt,
                "connections": sum(1 for stream in streams if stream.via is self and not stream.closed),
                "connections_total": self.opened}


class RouteChoice:
    """Which of `routes` a new client takes: failover (the default) or balance."""

    def __init__(self, routes: list, balance: bool = False):
        self.routes = routes
        self.balance = balance
        self._turn = 0

    def pick(self) -> InletRoute | None:
        up = [route for route in self.routes if route.health is Health.UP]
        if up:
            if not self.balance:
                return up[0]
            self._turn += 1
            return up[self._turn % len(up)]
        return next((route for route in self.routes if route.health is Health.CONNECTING), None)
