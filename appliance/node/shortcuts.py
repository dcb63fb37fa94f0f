"""Shortcuts: what a link's message with routes seen before does, without routing it again.

A relay node mostly re-addresses: a message for `forward_to_x` leaves by x's link with x's
route in front, and an answer for one of its connections leaves by that connection. Every
message of a stream carries the same routes, so after one has taken the long way (decoded,
a message object made, routed through the relay's worker, encoded again) the rest of the
stream's are written to the same link behind the same new head, their payload not decoded.
Messages for this node's own workers (a secure channel, a portal) keep the routes they
decode to, with the link already in front of the return route.

What the long way decides depends only on the routes' bytes and on the node's workers: the
node forgets every shortcut when a worker comes or goes (Node.register, Node.unregister).
What depends on the moment, the out link's backlog and its admission, is asked each time
(TcpConnection.forward). Bounded node-wide, in entries and in the hops an entry holds: a
flood of routes empties it, it cannot grow it.
"""

from __future__ import annotations

from typing import Any, Final

from appliance.wire.address import MAX_ROUTE_HOPS, Route
from appliance.wire.transport import MAX_CACHED_HEAD, routes_head

MAX_READDRESSES: Final = 4  # workers that only re-address, one after another, before the link out
MAX_SHORTCUTS: Final = 2048  # entries, node-wide; emptied when full
MAX_HOPS: Final = 16  # of both routes together, in an entry: a portal's are 4 to 8; a stranger's 64 + 64 are not kept


class Shortcut:
    """The routes a message decodes to (its link in front of the return route) and, when it
    only passes through this node, the link it leaves by and its head there."""

    __slots__ = ("onward", "return_route", "link", "head")

    def __init__(self, onward: Route, return_route: Route, link: Any, head: bytes):
        self.onward = onward
        self.return_route = return_route
        self.link = link  # None: the message is this node's, or a worker on its way does more
        self.head = head


class Shortcuts:
    """The node's table: (arrival link, the version and routes' bytes) -> Shortcut."""

    __slots__ = ("_known",)

    def __init__(self) -> None:
        self._known: dict = {}

    def get(self, link: Any, body, routes_end: int) -> Shortcut | None:
        """What a message that `link` received does, if its first routes_end bytes (the
        version and the routes) were seen on that link before."""
        if routes_end > MAX_CACHED_HEAD:
            return None  # never learnt: not worth the copy of the key
        return self._known.get((link, bytes(body[:routes_end])))

    def learn(self, node, link: Any, body, routes_end: int, onward: Route, return_route: Route) -> None:
        """Remember what the message `link` received, with routes decoded to onward and
        return_route (the link in front), does; for ordinary routes only."""
        if routes_end > MAX_CACHED_HEAD or len(onward) + len(return_route) > MAX_HOPS:
            return
        out = _leaving(node, onward, return_route)
        link_out, head = out if out is not None else (None, b"")
        if len(self._known) >= MAX_SHORTCUTS:
            self._known.clear()
        self._known[(link, bytes(body[:routes_end]))] = Shortcut(onward, return_route, link_out, head)

    def clear(self) -> None:
        self._known.clear()


def _leaving(node, onward: Route, return_route: Route) -> tuple | None:
    """(the link, the head of the frame) a message leaves by when every worker on its way
    only re-addresses it (Worker.readdress), else None; the node's route checks included."""
    for _ in range(MAX_READDRESSES + 1):  # and the link
        if not onward or len(onward) > MAX_ROUTE_HOPS or len(return_route) > MAX_ROUTE_HOPS:
            return None
        worker = node.workers.get(onward[0])
        if worker is None:
            return None
        if getattr(worker, "tcp_link", False):
            return worker, routes_head(onward[1:], return_route)
        readdressed = worker.readdress(onward)
        if readdressed is None:
            return None
        onward = readdressed
    return None
