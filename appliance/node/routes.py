"""Turning route text into a route of addresses on a running node.

`/service/x` is a local address; `/ip4|ip6|dnsaddr/H/tcp/P` opens (or reuses) a TCP
connection and stands for its worker address; `/node/n` is node n's TCP listener, found
through the `node_lookup` the host layer provides; `/secure/x` runs (or reuses) a secure
channel handshake with listener x over the route so far, and stands for its encryptor.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

from appliance.node.errors import BadRoute, RouteError
from appliance.wire import multiaddr
from appliance.wire.address import Address
from appliance.wire.errors import MultiaddrError


class Resolved(NamedTuple):
    route: tuple
    opened: list  # TCP connections opened for this route (owned by the caller)


NodeLookup = Callable[[str], Optional[str]]  # node name -> "host:port" of its listener
# (route to the listener, text of that route) -> the channel's encryptor address
SecureConnect = Callable[[tuple, str], Address]


def parse_route(text: str) -> list:
    try:
        return multiaddr.parse(text)
    except MultiaddrError as exc:
        raise BadRoute(str(exc)) from None


def tcp_target(segment, node_lookup: NodeLookup) -> multiaddr.Tcp:
    """Where a Tcp or Node segment connects to: `/node/n` is node n's listener."""
    if isinstance(segment, multiaddr.Tcp):
        return segment
    hostport = node_lookup(segment.name)
    if hostport is None:
        raise RouteError(f"unknown node {segment.name!r}")
    return multiaddr.parse_hostport(hostport)


def unknown_project(name: str) -> RouteError:
    return RouteError(f"unknown project {name!r} (create the node with --project FILE, or enroll)")


def check(text: str, node_lookup: NodeLookup, projects) -> None:
    """What is wrong with route text that can be told without sending anything: its syntax,
    a node or project it names that this host does not know, a segment not supported."""
    for segment in parse_route(text):
        if isinstance(segment, multiaddr.Node):
            tcp_target(segment, node_lookup)
        elif isinstance(segment, multiaddr.Project) and segment.name not in projects:
            raise unknown_project(segment.name)
        elif not isinstance(segment, (multiaddr.Tcp, multiaddr.Local, multiaddr.Secure, multiaddr.Project)):
            raise RouteError(f"{multiaddr.to_text([segment])} in routes is not supported yet")


def first_project(text: str) -> str | None:
    """The name of the first `/project/NAME` in route text, if any (the text is well formed)."""
    return next((segment.name for segment in parse_route(text) if isinstance(segment, multiaddr.Project)), None)


def resolve(tcp, text: str, node_lookup: NodeLookup, reuse: bool = True,
            secure: Optional[SecureConnect] = None, project=None) -> Resolved:
    """`project(name, opened)` gives a project hop's address and the text that stands for it
    in the `via` of secure channels made over it (which relay box it went through)."""
    route: list = []
    opened: list = []
    via = ""  # the route so far as text
    try:
        for segment in parse_route(text):
            if isinstance(segment, multiaddr.Project) and project is not None:
                address, label = project(segment.name, opened)
                route.append(address)
                via += label
                continue
            via += multiaddr.to_text([segment])
            if isinstance(segment, multiaddr.Secure) and secure is not None:
                listener_route = tuple(route) + (Address.local(segment.listener),)
                route = [secure(listener_route, via)]
                continue
            if isinstance(segment, multiaddr.Local):
                route.append(Address.local(segment.name))
                continue
            if isinstance(segment, (multiaddr.Tcp, multiaddr.Node)):
                target = tcp_target(segment, node_lookup)
                if reuse:
                    conn = tcp.connection_to(target)
                else:
                    conn = tcp.connect(target)
                    opened.append(conn)
                route.append(conn.address)
                continue
            raise RouteError(f"{multiaddr.to_text([segment])} in routes is not supported yet")
    except Exception:
        for conn in opened:
            conn.close()
        raise
    return Resolved(tuple(route), opened)
