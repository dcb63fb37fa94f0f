"""TCP portals: an inlet listens next to the user, an outlet connects next to the service.

For each client connection the inlet sends Ping to the outlet's route. The outlet connects
to its target FIRST and only then answers Pong from a per-connection worker, or Disconnect
when the target is down, so a client never waits on a dead target. Both sides then stream
Payload chunks; end of stream or an error on either side sends Disconnect to the other.
"""

from __future__ import annotations

import logging
import os

import gevent
from gevent.event import AsyncResult

from appliance.node.errors import ConnectionClosed, NodeError
from appliance.node.message import LocalMessage
from appliance.node.sockets import HubSocket
from appliance.node.tcp import connect_tcp, start_server
from appliance.node.worker import Worker
from appliance.node.writer import SocketWriter
from appliance.wire import portal as portal_wire
from appliance.wire.address import Address
from appliance.wire.errors import DecodeError
from appliance.wire.multiaddr import parse_hostport

log = logging.getLogger(__name__)

CHUNK = 128 * 1024
PONG_TIMEOUT = 10.0
TARGET_CONNECT_TIMEOUT = 5.0
FLUSH_ON_DISCONNECT = 30.0


class PortalStream(Worker):
    """One side of one portal connection: a socket on this node and a route to the other side."""

    def __init__(self, node, sock: HubSocket, registry: set, peer: str | None = None):
        self.node = node
        self.sock = sock
        self.address = Address.random_local()
        self.remote_route = ()
        self.peer = peer  # the identifier at the other side, when it came over a secure channel
        self._disconnecting = False
        self.writer = SocketWriter(sock, on_error=lambda exc: self.close(notify=True))
        self.registry = registry
        self.closed = False
        node.register(self)
        registry.add(self)

    def handle(self, msg: LocalMessage) -> None:
        try:
            tag, data = portal_wire.decode(msg.payload)
        except DecodeError as exc:
            self.node.counters["bad_portal_messages"] += 1
            log.debug("bad portal message: %s", exc)
            return
        if msg.peer != self.peer and self.remote_route:
            self.node.counters["portal_messages_from_wrong_peer"] += 1
            return
        if tag == portal_wire.PAYLOAD_TAG:
            try:
                self.writer.write(data)
            except ConnectionClosed:
                pass
        elif tag == portal_wire.DISCONNECT[0]:
            if not self._disconnecting:
                self._disconnecting = True
                self.on_disconnect()
        else:
            self.on_control(tag, msg)

    def on_control(self, tag: int, msg: LocalMessage) -> None:
        log.debug("unexpected portal message %d", tag)

    def pump(self) -> None:
        """Read the local socket until it ends, sending every chunk to the other side."""
        sock, node, route, ret = self.sock, self.node, self.remote_route, (self.address,)
        encode = portal_wire.encode_payload
        try:
            while not self.closed:
                data = sock.recv(CHUNK)
                if not data:
                    break
                node.route(LocalMessage(route, ret, encode(data)))
        except OSError as exc:
            log.debug("portal socket error: %s", exc)
        self.close(notify=True)

    def on_disconnect(self) -> None:
        """The other side is done: close once what it sent has reached our socket."""
        if self.writer.idle:
            self.close(notify=False)
        else:
            gevent.spawn(self._close_after_flush)

    def _close_after_flush(self) -> None:
        self.writer.flush(FLUSH_ON_DISCONNECT)
        self.close(notify=False)

    def close(self, notify: bool) -> None:
        if self.closed:
            return
        self.closed = True
        if notify and self.remote_route:
            self.node.send(self.remote_route, portal_wire.DISCONNECT, (self.address,))
        self.node.unregister(self.address)
        self.registry.discard(self)
        self.writer.close()
        self.sock.close()

    def stop(self) -> None:
        self.close(notify=True)


class InletStream(PortalStream):
    def __init__(self, node, sock, registry, resolve_outlet, authorized):
        super().__init__(node, sock, registry)
        self.pong = AsyncResult()
        self.resolve_outlet = resolve_outlet
        self.authorized = authorized

    def on_control(self, tag: int, msg: LocalMessage) -> None:
        if tag != portal_wire.PONG[0] or self.pong.ready():
            return
        if self.authorized and msg.peer not in self.authorized:
            self.node.counters["unauthorized"] += 1
            log.warning("inlet: outlet answered as %s, which is not authorized", msg.peer or "an unauthenticated peer")
            return
        self.peer = msg.peer
        self.pong.set(msg.return_route)

    def run(self) -> None:
        try:
            outlet_route = self.resolve_outlet()
        except NodeError as exc:
            log.warning("inlet: %s, closing the client", exc)
            self.close(notify=False)
            return
        self.node.send(outlet_route, portal_wire.PING, (self.address,))
        try:
            self.remote_route = self.pong.get(timeout=PONG_TIMEOUT)
        except gevent.Timeout:
            log.warning("inlet: no answer from the outlet within %g s, closing the client", PONG_TIMEOUT)
            self.close(notify=False)
            return
        if not self.closed:
            self.pump()

    def on_disconnect(self) -> None:
        if not self.pong.ready():
            self.pong.set(())  # the outlet refused: the target is down
            self.close(notify=False)
            return
        super().on_disconnect()


class Inlet:
    """Listens on host:port; every accepted client becomes an InletStream to the outlet.

    The resolved route is reused while its first hop (the only address of it on this
    node: a TCP connection or a secure channel) is alive, and resolved again otherwise,
    so an inlet recovers when that connection is lost and can be re-opened."""

    def __init__(self, node, bind: str, resolve_outlet, route_text: str, alias: str, authorized=None):
        self.node = node
        self.alias = alias
        self.authorized = authorized
        self._resolve = resolve_outlet
        self._route = None
        self.route_text = route_text
        self.streams: set = set()
        self.server, self.bind = start_server(bind, self._accept)

    def _accept(self, sock: HubSocket, _peer) -> None:
        InletStream(self.node, sock, self.streams, self.resolve_outlet, self.authorized).run()

    def resolve_outlet(self):
        route = self._route
        if not route or route[0] not in self.node.workers:
            route = self._route = self._resolve()
        return route

    def close(self) -> None:
        self.server.stop()
        for stream in list(self.streams):
            stream.close(notify=True)

    def describe(self) -> dict:
        return {"alias": self.alias, "bind_address": self.bind, "outlet_route": self.route_text,
                "connections": len(self.streams), "authorized": sorted(self.authorized or ())}


class Outlet(Worker):
    """The service at `/service/<name>`: each Ping opens a connection to the target."""

    def __init__(self, node, name: str, target: str, alias: str, authorized=None, allow=None, attributes_of=None):
        self.node = node
        self.alias = alias
        self.authorized = authorized
        self.allow = allow or {}  # attributes the peer must prove with a project credential
        self.attributes_of = attributes_of
        self.stopped = False
        self.address = Address.local(name)
        self.target_text = target
        self.target = parse_hostport(target)
        self.streams: set = set()

    def handle(self, msg: LocalMessage) -> None:
        try:
            tag, _ = portal_wire.decode(msg.payload)
        except DecodeError:
            tag = None
        if tag != portal_wire.PING[0]:
            self.node.counters["bad_portal_messages"] += 1
            return
        refusal = self._refusal(msg.peer)
        if refusal:
            self.node.counters["unauthorized"] += 1
            log.warning("outlet %s: refused %s (%s)", self.alias, msg.peer or "an unauthenticated peer", refusal)
            self.node.send(msg.return_route, portal_wire.DISCONNECT, (self.address,))
            return
        gevent.spawn(self._open, msg.return_route, msg.peer)

    def _refusal(self, peer: str | None) -> str | None:
        if self.authorized and peer not in self.authorized:
            return "not authorized"
        if self.allow:
            attributes = self.attributes_of(peer) if self.attributes_of else None
            if attributes is None:
                return "no valid project credential"
            if any(attributes.get(k) != v for k, v in self.allow.items()):
                return f"credential lacks {self.allow}"
        return None

    def _open(self, inlet_route, peer) -> None:
        try:
            sock = connect_tcp(self.target, timeout=TARGET_CONNECT_TIMEOUT)
        except NodeError as exc:
            log.warning("outlet %s: %s", self.address.inner.decode(), exc)
            self.node.send(inlet_route, portal_wire.DISCONNECT, (self.address,))
            return
        if self.stopped:  # deleted while we were connecting
            sock.close()
            return
        stream = PortalStream(self.node, sock, self.streams, peer)
        stream.remote_route = inlet_route
        self.node.send(inlet_route, portal_wire.PONG, (stream.address,))
        stream.pump()

    def stop(self) -> None:
        self.stopped = True
        for stream in list(self.streams):
            stream.close(notify=True)

    def describe(self) -> dict:
        return {"alias": self.alias, "address": f"/service/{self.address.inner.decode()}",
                "target": self.target_text, "connections": len(self.streams),
                "authorized": sorted(self.authorized or ()), "allow": self.allow}


def new_alias() -> str:
    return os.urandom(8).hex()
