"""TCP portals: an inlet listens next to the user, an outlet connects next to the service.

For each client connection the inlet sends Ping to the outlet's route. The outlet connects
to its target FIRST and only then answers Pong (which grants the inlet its first window)
from a per-connection worker, or Disconnect when the target is down, so a client never
waits on a dead target. The inlet acknowledges with its own window; an outlet stream that
hears nothing within PONG_TIMEOUT closes (the inlet gave up or its route broke), so none is
orphaned.

Then both sides stream Payload within the credit the other granted (stream/state.py): a
client that stops reading stops its own stream and nothing else, and what a node holds per
stream is bounded by the window. End is a half-close, Disconnect an abort. A stream is bound
to the link its peer is reached through (a TCP connection or a secure channel): when that
link is lost the stream ends at once with a reset to its client.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, OrderedDict
from socket import SO_ERROR, SOL_SOCKET
from typing import Any, Final

import gevent
from gevent.event import Event

from appliance.limits.budgets import Limits
from appliance.node.errors import ConnectionClosed, NodeError
from appliance.node.transport.links import watch_link
from appliance.node.lograte import LogRate
from appliance.node.message import LocalMessage
from appliance.node.portals.access import access_refusal
from appliance.node.portals.inlet_routes import InletRoute, RouteChoice
from appliance.node.transport.sockets import HubSocket
from appliance.node.sources import message_source
from appliance.node.transport.tcp import connect_tcp, start_server
from appliance.node.worker import Worker
from appliance.node.transport.writer import SocketWriter
from appliance.stream.credit import DEFAULT_WINDOW, INITIAL_WINDOW
from appliance.stream.errors import StreamError
from appliance.observe.condition import Health
from appliance.stream import state as stream_state
from appliance.stream.state import ABORT_AND_TELL, Act, PortalStreamState, State
from appliance.wire import portal as portal_wire
from appliance.wire import probe, proxy_protocol
from appliance.wire.address import Address
from appliance.wire.buffer import Buffer
from appliance.wire.errors import DecodeError, WireError
from appliance.wire.multiaddr import Tcp, parse_hostport

log = logging.getLogger(__name__)

CHUNK: Final = 128 * 1024
TARGET_CONNECT_TIMEOUT = 5.0
FLUSH_IDLE = 30.0  # a closing stream whose client takes nothing for this long is reset
ORIGIN: Final = bytes([portal_wire.ORIGIN_TAG])
MAX_ORIGINS: Final = 4096  # Origins an outlet holds for Pings still to come
MAX_ORIGIN_ROUTE: Final = 1024  # bytes of return route an Origin may be kept under (a few hops are tens)
REFUSAL_LOG_EVERY = 60.0  # an inlet refusing clients while its route is down says so this often


class Tally:
    """What crossed one inlet or outlet, for its metrics: counted per chunk, never per byte.
    `received`: bytes read from its sockets (clients, or the outlet's target); `sent`: bytes
    its sockets took; `stalls`: times a stream waited for its peer's credit."""

    __slots__ = ("received", "sent", "opened", "failed", "stalls")

    def __init__(self):
        self.received = self.sent = self.opened = self.failed = self.stalls = 0


class PortalStream(Worker):
    """One side of one portal connection: a socket on this node and a route to the other side."""

    def __init__(self, node, sock: HubSocket, registry: set, state: PortalStreamState, tally: Tally,
                 peer: str | None = None):
        self.node = node
        self.tally = tally
        self.sock = sock
        self.address = Address.random_local()
        self.remote_route: Any = ()
        self.peer = peer  # the identifier at the other side, when it came over a secure channel
        self.source: Any = None  # an outlet's: who opened it (Outlet._connections_from)
        self.state = state
        self.writer = SocketWriter(sock, on_error=self._socket_failed, on_sent=self._took,
                                   limit=max(state.receive_window.size, INITIAL_WINDOW) + CHUNK)
        self.registry = registry
        self.closed = False
        self.heard = True  # a message came from the peer since RouteWatch last looked
        self._pumping = False  # the local socket is read (start_pumping), whenever there is credit
        self._unwatch: Any = None
        node.register(self)
        registry.add(self)

    def bind(self, remote_route: tuple) -> None:
        """From now on the peer is at `remote_route`; the stream dies with its first hop."""
        self.remote_route = remote_route
        if remote_route:
            self._unwatch = watch_link(self.node, remote_route[0], self.link_lost)

    def peer_route(self) -> tuple:
        return self.remote_route

    # --- from the peer ------------------------------------------------------------------------
    def handle(self, msg: LocalMessage) -> None:
        try:
            tag, value = portal_wire.decode(msg.payload)
        except DecodeError as exc:
            self.node.counters["bad_portal_messages"] += 1
            log.debug("bad portal message: %s", exc)
            return
        if self.remote_route and (msg.return_route != self.remote_route or msg.peer != self.peer):
            # not our peer: e.g. a second outlet stream answering a repeated Ping
            self.node.counters["portal_messages_from_wrong_route"] += 1
            return
        self.heard = True
        self.receive(tag, value)

    def receive(self, tag: int, value) -> None:
        try:
            actions = self.state.receive(tag, value)
        except StreamError as exc:
            self.node.counters["portal_protocol_errors"] += 1
            log.debug("portal stream %s: %s", self.address, exc)
            actions = ABORT_AND_TELL
        self.apply(actions)

    def apply(self, actions) -> None:
        for act, value in actions:
            if act is Act.WRITE:
                try:
                    self.writer.write(value)
                except ConnectionClosed:
                    pass  # the socket failed: _socket_failed ends the stream
            elif act is Act.SEND:
                self.node.send(self.peer_route(), value, (self.address,))
            elif act is Act.WAKE:
                if self._pumping:
                    self.sock.resume_reading()
            elif act is Act.SHUT_WRITE:
                self._when_written(self._shut_write)
            elif act is Act.CLOSE:
                self._when_written(self._finish)
            elif act is Act.REFUSED:
                self.node.counters["portal_refused"] += 1
                self.tally.failed += 1
            elif act is Act.TIMED_OUT:
                self._timed_out()
            else:  # ABORT
                self._finish(reset=True)

    def tick(self, interval: float) -> None:
        """RouteWatch's visit every `interval` seconds: reset an outlet stream its inlet did not
        acknowledge within the Pong timeout (its inlet gave up by then), grant back what our socket took
        since the last grant, and find out about a client that reset while nobody was reading
        its socket (waiting for credit or for Pong, or after it half-closed)."""
        if self.closed:
            return
        if self.state.state is State.AWAITING_ACK:
            self.apply(self.state.timer(self.node.clock.now()))
            return
        actions = self.state.flush_credit()
        if actions:
            self.apply(actions)
        if self.closed:
            return  # the credit's link failed and took the stream with it
        if not self.sock.reading and self.sock.sock.getsockopt(SOL_SOCKET, SO_ERROR):
            self.node.counters["portal_clients_reset"] += 1
            self.abort()

    def _timed_out(self) -> None:
        log.debug("portal stream %s: not acknowledged within %g s", self.address, stream_state.PONG_TIMEOUT)
        self.node.counters["portal_streams_unacknowledged"] += 1

    def _took(self, size: int) -> None:
        """The client socket took bytes the peer sent: grant them back."""
        self.tally.sent += size
        actions = self.state.took(size)
        if actions:
            self.apply(actions)

    # --- the local socket ---------------------------------------------------------------------
    def start_pumping(self) -> None:
        """From now on the local socket is read in the hub's callback (`_readable`) while we
        have credit, each chunk sent on to the other side. Without credit the socket rests
        until Credit wakes it (an outlet stream first waits for its inlet's acknowledgement,
        which RouteWatch's tick bounds). No greenlet waits on a portal connection."""
        self._pumping = True
        self.sock.read_by(self._readable)
        if not self.state.sendable:
            self.sock.pause_reading()

    def _readable(self) -> None:
        state = self.state
        allowance = state.sendable
        if not allowance:
            self.tally.stalls += 1
            self.sock.pause_reading()  # until Credit (Act.WAKE)
            return
        try:
            data = self.sock.recv_now(min(CHUNK, allowance))
        except OSError as exc:
            log.debug("portal socket error: %s", exc)
            self.abort()
            return
        if data is None:
            return  # woken for nothing
        if not data:
            self.sock.pause_reading()
            self.apply(state.local_eof())
            return
        state.sent(len(data))
        self.tally.received += len(data)
        self.node.route(LocalMessage(self.remote_route, (self.address,), portal_wire.encode_payload(data)))

    def _socket_failed(self, _exc) -> None:
        self.abort()

    def _shut_write(self) -> None:
        try:
            self.sock.sock.shutdown(1)  # SHUT_WR: our client sees end of input, can still send
        except OSError:
            pass

    def _when_written(self, then) -> None:
        if self.writer.idle:
            then()
        else:
            gevent.spawn(self._flush_then, then)

    def _flush_then(self, then) -> None:
        """Write out what is queued, however slowly the client reads, then `then()`; a client
        that takes nothing for FLUSH_IDLE seconds is reset."""
        progress = self.writer.progress()
        while not self.writer.flush(FLUSH_IDLE):
            if self.writer.progress() == progress:
                self._finish(reset=True)
                return
            progress = self.writer.progress()
        then()

    # --- ending -------------------------------------------------------------------------------
    def abort(self) -> None:
        """Give up on the stream: tell the peer (unless it is over already), reset the local
        socket now, also when it was still writing out what the peer sent before it closed."""
        actions = self.state.abort()
        if actions:
            self.apply(actions)
        elif not self.closed:
            self._finish(reset=True)

    def link_lost(self, _link) -> None:
        """The route to the peer is gone (its first link closed, or its far node is dead)."""
        actions = self.state.link_lost()
        if actions:
            self.node.counters["portal_streams_link_lost"] += 1
            self.apply(actions)

    def _finish(self, reset: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        self.node.unregister(self.address)
        self.registry.discard(self)
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        self.writer.close()
        if reset:
            self.sock.reset()
        else:
            self.sock.close()

    def stop(self) -> None:
        self.abort()


class InletStream(PortalStream):
    def __init__(self, inlet: "Inlet", sock, via, client: str = "", local: str = ""):
        state = PortalStreamState.for_inlet(inlet.window, inlet.node.clock.now(), inlet.authorized)
        super().__init__(inlet.node, sock, inlet.streams, state, inlet.tally)
        inlet.tally.opened += 1
        self.inlet = inlet
        self.via = via  # the InletRoute it pings over (another, when that one stops being the best)
        self._pinged: dict = {}  # first hop of a route a Ping went over -> its InletRoute
        self._origin = portal_wire.encode_origin(client, local)  # for the outlet's PROXY header
        self._outlet_route: Any = ()  # where the Pings went
        self._last_ping_route: Any = None  # the route the last Ping went over (None: it did not resolve)
        self._reason = "no Pong to our Pings"  # what went wrong last, for the log if we give up
        self._ponged = Event()  # the Ping loop's wake-up: Pong came, or the stream ended

    def handle(self, msg: LocalMessage) -> None:
        """Pong needs the message's route and peer (stream/state.py says what to do with it)."""
        if msg.payload != portal_wire.PONG:
            super().handle(msg)
            return
        for act, value in self.state.pong(msg.return_route, msg.peer):
            if act is Act.BIND:
                self._opened_by(msg)
            elif act is Act.TURN_AWAY:  # an answer to a repeated Ping: not needed
                self.node.counters["portal_pongs_turned_away"] += 1
                self.node.answer(msg, portal_wire.DISCONNECT, self.address)
            elif act is Act.UNAUTHORIZED:
                self.node.counters["unauthorized"] += 1
                log.warning("inlet: outlet answered as %s, which is not authorized", value or "an unauthenticated peer")
            else:
                self.apply(((act, value),))

    def _opened_by(self, msg: LocalMessage) -> None:
        self.peer = msg.peer
        # the route whose outlet answered (a Ping over an earlier route may answer after a switch)
        self.via = self._pinged.get(msg.return_route[0] if msg.return_route else None, self.via)
        self.via.opened += 1
        self.bind(msg.return_route)
        self._ponged.set()

    def run(self) -> None:
        if self._ping_until_pong() and not self.closed:
            self.start_pumping()

    def _ping_until_pong(self) -> bool:
        """Ping the outlet when the stream's state says (at once, then every PING_RETRY s until
        PONG_TIMEOUT), re-resolving the route between tries, so a client that arrives while a
        link is being rebuilt waits instead of failing. Whether the stream opened."""
        clock, state = self.node.clock, self.state
        while not self.closed and state.state is State.AWAITING_PONG:
            for act, value in state.timer(clock.now()):
                if act is Act.DOUBT:  # the route is in doubt: the next Ping takes another one that is up
                    self.via.route_failed(self._last_ping_route)
                    self.via.check.kick(f"no Pong within {stream_state.PING_RETRY:g} s")
                elif act is Act.PING:
                    self._ping()
                else:
                    self.apply(((act, value),))
            if not self.closed and state.state is State.AWAITING_PONG:
                clock.wait(self._ponged, max(0.0, state.next_timer - clock.now()))
        return not self.closed and state.state is not State.AWAITING_PONG

    def _ping(self) -> None:
        if self.via.health is not Health.UP:  # it failed meanwhile, or is not known yet: the best one now
            self.via = self.inlet.choice.pick() or self.via
        try:
            route = self.via.resolve_outlet(self.state.deadline - self.node.clock.now())
        except Exception as exc:  # noqa: BLE001 - whatever broke, the client waits and we try again
            route, self._reason = None, str(exc) or type(exc).__name__
            log.debug("inlet %s: %s", self.inlet.alias, exc)
        if route is not None and not self.closed and self.state.state is State.AWAITING_PONG:
            self._outlet_route, self._reason = route, "no Pong to our Pings"
            self._pinged[route[0]] = self.via
            self.node.send(route, self._origin, (self.address,))
            self.node.send(route, portal_wire.PING, (self.address,))
        self._last_ping_route = route
        self.state.pinged(self.node.clock.now())

    def _timed_out(self) -> None:
        log.warning("inlet %s (%s, route %s): no answer from the outlet within %g s (%s); closing the client",
                    self.inlet.alias, self.inlet.bind, self.inlet.route_text, stream_state.PONG_TIMEOUT, self._reason)
        self.node.counters["portal_pong_timeouts"] += 1
        self.inlet.tally.failed += 1
        self.via.check.kick(f"no answer from the outlet within {stream_state.PONG_TIMEOUT:g} s ({self._reason})")

    def peer_route(self) -> tuple:
        """Before Pong, the outlet service: a Disconnect there lets go of a connection it
        may have opened for us already."""
        return self.remote_route or self._outlet_route

    def _finish(self, reset: bool = False) -> None:
        super()._finish(reset)
        self._ponged.set()  # the Ping loop ends now, not at its next retry


class Inlet:
    """Listens on host:port; every accepted client becomes an InletStream to the outlet, over
    one of the inlet's routes (node/portals/inlet_routes.py). `routes`: (text, resolve(timeout)) pairs."""

    def __init__(self, node, bind: str, routes: list, alias: str, authorized=None, links_failed=None,
                 balance: bool = False, window: int = DEFAULT_WINDOW):
        self.node = node
        self.alias = alias
        self.authorized = authorized
        self.window = window
        self.route_text = " | ".join(text for text, _ in routes)
        self.streams: set = set()
        self.tally = Tally()
        self._refusals = LogRate(log, REFUSAL_LOG_EVERY)
        self.server, self.bind = start_server(bind, self._accept)
        links_failed = links_failed or (lambda route: None)
        self.routes = [InletRoute(node, f"inlet {alias} ({self.bind}, route {text})", text, resolve, links_failed,
                                  stream_state.PONG_TIMEOUT, self._streaming) for text, resolve in routes]
        self.choice = RouteChoice(self.routes, balance)

    def _accept(self, sock: HubSocket, peer) -> None:
        route = self.choice.pick()
        if route is None:  # every route is down: at once, not after PONG_TIMEOUT; they are retried meanwhile
            self.node.counters["inlet_clients_refused"] += 1
            self.tally.failed += 1
            self._refusals.warning(None, "inlet %s (%s, route %s): refusing clients: %s", self.alias, self.bind,
                                   self.route_text, "; ".join(r.check.condition.last_error or "down" for r in self.routes))
            sock.reset()
            return
        try:
            local = sock.sock.getsockname()[:2]  # the address it connected to (not a wildcard bind's)
        except OSError:
            local = ("", 0)
        InletStream(self, sock, route, Tcp(*peer).hostport, Tcp(*local).hostport).run()

    def _streaming(self, route) -> bool:
        """A stream over `route` heard its outlet lately (since RouteWatch's last tick): the
        route works. One that went quiet proves nothing (a stalled relay): then it is probed."""
        return any(s.via is route and s.remote_route and s.heard and not s.closed for s in self.streams)

    def wait_checked(self, timeout: float) -> None:
        deadline = gevent.get_hub().loop.now() + timeout
        for route in self.routes:
            route.check.wait_checked(max(0.0, deadline - gevent.get_hub().loop.now()))

    def close(self) -> None:
        for route in self.routes:
            route.stop()
        self.server.stop()
        for stream in list(self.streams):
            stream.abort()

    def describe(self) -> dict:
        """The inlet's state is its best route's: up when one is, connecting when one is trying,
        down when all are; the last error is the latest of any route's."""
        routes = [route.describe(self.streams) for route in self.routes]
        best = min(routes, key=lambda r: ORDER.index(r["state"]))
        latest = max(routes, key=lambda r: r["last_error_at"] or 0)
        return {"alias": self.alias, "bind_address": self.bind, "outlet_route": self.routes[0].text,
                "connections": len(self.streams), "authorized": sorted(self.authorized or ()),
                "balance": self.choice.balance, "state": best["state"], "since": best["since"],
                "last_error": latest["last_error"], "last_error_at": latest["last_error_at"],
                "route_rtt": best["route_rtt"], "routes": routes}


ORDER = [health.value for health in (Health.UP, Health.CONNECTING, Health.DOWN)]


class Outlet(Worker):
    """The service at `/service/<name>`: each Ping opens a connection to the target."""

    def __init__(self, node, name: str, target: str, alias: str, authorized=None, allow=None, attribute_sets=None,
                 window: int = DEFAULT_WINDOW, per_route: int = Limits.outlet_connections_per_route,
                 proxy_protocol: str | None = None):
        self.node = node
        self.proxy_protocol = proxy_protocol  # "v1" or "v2": a PROXY header first to the target
        self._origins: OrderedDict = OrderedDict()  # Ping return route -> (client, inlet) from its Origin
        self.per_route = per_route  # connections one inlet node may have open here (see _connections_from)
        self._opening: Counter = Counter()  # connections to the target being made, by inlet source
        self.alias = alias
        self.authorized = authorized
        self.allow = allow or {}  # attributes the peer must prove with a project credential
        self.attribute_sets = attribute_sets  # peer -> the attributes of each live credential it proved
        self.window = window
        self.stopped = False
        self.address = Address.local(name)
        self.target_text = target
        self.target = parse_hostport(target)
        self.streams: set = set()
        self.tally = Tally()

    def handle(self, msg: LocalMessage) -> None:
        payload = msg.payload
        if payload == portal_wire.DISCONNECT:
            self._cancel(msg.return_route)
            return
        if payload[:1] == ORIGIN:
            self._remember_origin(msg)
            return
        if probe.is_probe(payload):  # an inlet asks whether we are here (for it)
            answer: Buffer | None = payload
            if self._refusal(msg.peer):
                self.node.counters["outlet_probes_refused"] += 1
                answer = probe.unreachable_answer(payload)
            self.node.answer(msg, answer, self.address)
            return
        if payload != portal_wire.PING:
            self.node.counters["bad_portal_messages"] += 1
            return
        refusal = self._refusal(msg.peer)
        if refusal:
            self.node.counters["unauthorized"] += 1
            self.tally.failed += 1
            log.warning("outlet %s: refused %s (%s)", self.alias, msg.peer or "an unauthenticated peer", refusal)
            self.node.answer(msg, portal_wire.DISCONNECT, self.address)
            return
        source = msg.peer or message_source(self.node, msg.return_route)
        if self._connections_from(source) >= self.per_route:
            self.tally.failed += 1
            self.node.counters["outlet_connections_refused"] += 1
            log.debug("outlet %s: refused a connection: %d open for one inlet (outlet_connections_per_route)",
                      self.alias, self.per_route)
            self.node.answer(msg, portal_wire.DISCONNECT, self.address)
            return
        self._opening[source] += 1
        origin = self._origins.pop(msg.return_route, None)
        gevent.spawn(self._open, msg.return_route, msg.peer, source, origin)

    def _remember_origin(self, msg: LocalMessage) -> None:
        """Until its Ping comes (right after it); a few thousand at most, the oldest forgotten,
        and only from peers we would serve, over routes of an ordinary size."""
        if not self.proxy_protocol:
            return
        if self._refusal(msg.peer) or sum(len(a.inner) for a in msg.return_route) > MAX_ORIGIN_ROUTE:
            self.node.counters["outlet_origins_refused"] += 1
            return
        try:
            _tag, origin = portal_wire.decode(msg.payload)
        except DecodeError:
            self.node.counters["bad_portal_messages"] += 1
            return
        self._origins[msg.return_route] = origin
        while len(self._origins) > MAX_ORIGINS:
            self._origins.popitem(last=False)

    def _connections_from(self, source) -> int:
        """Connections open or being opened for inlets at `source`: the peer identity of a
        secure channel, else the link (node/sources.py): one inlet node, whatever hops it
        writes after that. Counted only when there are enough of all to matter."""
        if len(self.streams) + sum(self._opening.values()) < self.per_route:
            return 0
        return self._opening[source] + sum(1 for s in self.streams if s.source == source)

    def _refusal(self, peer: str | None) -> str | None:
        return access_refusal(peer, self.authorized, self.allow, self.attribute_sets)

    def _cancel(self, inlet_route: tuple) -> None:
        """The inlet behind `inlet_route` gave up before it heard our Pong."""
        for stream in list(self.streams):
            if stream.remote_route == inlet_route and stream.state.state is State.AWAITING_ACK:
                self.node.counters["portal_streams_cancelled"] += 1
                stream.apply(stream.state.link_lost())

    def _open(self, inlet_route, peer, source, origin=None) -> None:
        try:
            sock = connect_tcp(self.target, timeout=TARGET_CONNECT_TIMEOUT)
        except NodeError as exc:
            self._opened(source)
            self.tally.failed += 1
            log.warning("outlet %s: %s", self.address.inner.decode(), exc)
            self.node.send(inlet_route, portal_wire.DISCONNECT, (self.address,))
            return
        self._opened(source)
        if self.stopped:  # deleted while we were connecting
            sock.close()
            return
        state, first = PortalStreamState.for_outlet(self.window, self.node.clock.now())
        self.tally.opened += 1
        stream = PortalStream(self.node, sock, self.streams, state, self.tally, peer)
        stream.source = source
        stream.bind(inlet_route)
        if self.proxy_protocol:  # before any byte of the client's
            stream.writer.write(proxy_header(self.proxy_protocol, origin))
        stream.apply(first)
        stream.start_pumping()

    def _opened(self, source) -> None:
        self._opening[source] -= 1
        if self._opening[source] <= 0:
            del self._opening[source]

    def stop(self) -> None:
        self.stopped = True
        for stream in list(self.streams):
            stream.abort()

    def describe(self) -> dict:
        return {"alias": self.alias, "address": f"/service/{self.address.inner.decode()}",
                "target": self.target_text, "connections": len(self.streams),
                "authorized": sorted(self.authorized or ()), "allow": self.allow,
                "proxy_protocol": self.proxy_protocol}


def proxy_header(version: str, origin) -> bytes:
    """The PROXY protocol header for a connection from `origin` ((client, inlet) as
    HOST:PORT); without a usable one (an inlet of an older version), the header says unknown."""
    try:
        client, inlet = (parse_hostport(text) for text in origin)
        return proxy_protocol.encode(version, (client.host, client.port), (inlet.host, inlet.port))
    except (TypeError, ValueError, WireError):
        return proxy_protocol.encode(version, None, None)


def new_alias() -> str:
    return os.urandom(8).hex()
