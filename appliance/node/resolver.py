"""Route text to a route of addresses on this node, opening (or reusing) what it needs on
the way: TCP connections, secure channels, the hops to a project's relay boxes."""

from __future__ import annotations

from appliance.node import routes
from appliance.node.channels.channel import HANDSHAKE_TIMEOUT
from appliance.node.project.info import AccessRoute, box_label
from appliance.wire import multiaddr


class Resolver:
    def __init__(self, tcp, channels, membership, node_lookup: routes.NodeLookup):
        self.tcp, self.channels, self.membership, self.node_lookup = tcp, channels, membership, node_lookup

    def resolve(self, text: str, reuse: bool = True, authorized=None,
                handshake_timeout: float = HANDSHAKE_TIMEOUT, box: AccessRoute | None = None) -> routes.Resolved:
        """Route text to addresses; with `reuse`, existing TCP connections and secure
        channels over the same route are used, else new ones are made (relays own theirs).
        Inlets pass a short `handshake_timeout`: they try again soon anyway. `box`: the relay
        box of the first project the route names that it goes through (None: the project
        node; see `each_box`)."""
        def secure(route, via):
            if reuse:
                return self.channels.channel_to(route, via, authorized, handshake_timeout).encryptor.address
            return self.channels.create(route, via, authorized, timeout=handshake_timeout).encryptor.address

        first_project = None  # the first project the route names: learnt from its first project hop

        def project(name, opened):
            nonlocal first_project
            first_project = first_project or name
            return self.membership.hop(name, opened, reuse, handshake_timeout, box if name == first_project else None)

        return routes.resolve(self.tcp, text, self.node_lookup, reuse=reuse, secure=secure, project=project)

    def each_box(self, text: str) -> list:
        """(label, box) for each way `text` can go: one per relay box of the first project it
        names (box None: the project node; the label names the others), else just (text, None)."""
        name = routes.first_project(text)
        info = self.membership.trust.projects.get(name) if name else None
        if info is None or not info.boxes:
            return [(text, None)]
        segments = routes.parse_route(text)
        first = next(i for i, segment in enumerate(segments) if isinstance(segment, multiaddr.Project))

        def label(box):
            return (multiaddr.to_text(segments[:first]) + box_label(name, box)
                    + multiaddr.to_text(segments[first + 1:]))
        return [(label(box), box) for box in (None, *info.boxes)]

    def registration_routes(self, ats: list, authorized=None) -> list:
        """(label, how a relay registration resolves its route to one relay node) for each
        relay node of `ats` (each box of a project): with its own connections (a relay owns
        them, and closes them when it is lost)."""
        def resolver(text, box):
            return lambda: self.resolve(text, reuse=False, authorized=authorized, box=box)
        return [(label, resolver(text, box)) for text in ats for label, box in self.each_box(text)]
