"""TCP transport: listeners and connections that carry framed transport messages.

Each connection is a worker at a random local address. A message routed to that address
leaves through the socket without its first hop; a message that arrives gets the address
prepended to its return route, so replies find their way back through the same socket.
"""

from __future__ import annotations

import logging
import os
import random
import socket as _stdsocket
from typing import Any, Final

import gevent

from appliance.node.errors import ConnectionClosed, NotFound, RouteError
from appliance.limits.budgets import Limits
from appliance.node.transport.budget import ConnectionBudget, source_address
from appliance.node.transport.links import CloseNotifier
from appliance.node.transport.liveness import DEFAULT_LINK_TIMEOUT, LinkMonitor
from appliance.node.message import LocalMessage
from appliance.node.transport.queues import ACCOUNT_FROM, ANSWERS, DATAGRAM_BACKLOG, LinkQueue, QueueBudget
from appliance.node.singleflight import SingleFlight
from appliance.node.transport.sockets import HubSocket, Listener, connect
from appliance.node.sources import arrival_link
from appliance.node.worker import Worker
from appliance.node.transport.writer import Batch, SocketWriter
from appliance.wire.address import Address
from appliance.wire.errors import DecodeError, WireError
from appliance.wire.framing import DEFAULT_MAX_FRAME, PROTOCOL_VERSION_BYTE, FrameDecoder, encode_frame_header
from appliance.wire.multiaddr import Tcp, parse_hostport
from appliance.wire.transport import decode_body, frame_prefix, payload_at

log = logging.getLogger(__name__)

RECV_SIZE: Final = 256 * 1024
CONNECT_TIMEOUT = 10.0
REDIAL_FIRST = 0.25  # seconds before a lost persistent connection dials again; doubles...
REDIAL_MAX = 2.0  # ...up to this, each wait randomised to 50-100 %
REDIAL_STABLE = 10.0  # the backoff starts again only after a connection stayed up this long
GATHER_FROM: Final = 16 * 1024  # a payload this long may be sent behind its frame's head, not copied into one frame
YIELD_EVERY: Final = 16  # frames handled before others get a turn: a flood in one read must not stall them


def os_reason(exc: BaseException) -> str:
    """The plain reason of a socket error ("Connection refused"), without errno or address."""
    reason = getattr(exc, "strerror", None) or str(exc) or "timed out"
    return reason.split(": (")[0]


def start_server(bind: str, handle) -> tuple:
    """A Listener on HOST:PORT (port 0: any free port) and the address it got."""
    target = parse_hostport(bind, allow_zero=True)
    try:
        server = Listener(target.host, target.port, handle)
    except OSError as exc:
        raise RouteError(f"cannot listen on {bind}: {os_reason(exc)}") from None
    return server, Tcp(*server.address[:2]).hostport


def connect_tcp(target: Tcp, timeout: float = CONNECT_TIMEOUT) -> HubSocket:
    """Open a TCP socket to host:port or raise RouteError with a one-line reason."""
    try:
        return connect(target.host, target.port, timeout)
    except _stdsocket.gaierror as exc:
        raise RouteError(f"cannot resolve {target.host}: {exc.strerror}") from None
    except OSError as exc:
        raise RouteError(f"cannot connect to {target.hostport}: {os_reason(exc)}") from None


def _framed(prefix: tuple, payload) -> tuple:
    """(first part, second part or None, size) of a frame to send: its prefix's parts and the
    payload joined once, or the payload left where it is (_sent_where_it_is)."""
    if _sent_where_it_is(payload):
        first = b"".join(prefix)
        return first, payload, len(first) + len(payload)
    frame = b"".join((*prefix, payload))
    return frame, None, len(frame)


def _sent_where_it_is(payload) -> bool:
    """Is this payload sent as it is, behind its frame's head (a gathering send), rather than
    copied into one frame? When it is long, and most of what it is a view of: a queued view
    holds its whole buffer (a receive of many frames), and a link's queue counts the view.
    Nothing holds a payload to change it."""
    if len(payload) < GATHER_FROM:
        return False
    return not isinstance(payload, memoryview) or len(payload) * 2 >= memoryview(payload.obj).nbytes


class TcpConnection(Worker, CloseNotifier):
    """One node-to-node link. A persistent one (`target` set: made by `tcp-connection
    create` or TOML) outlives its sockets: when one is lost it dials again, with backoff,
    under the same worker address, so routes written with that address recover too.
    Watchers (`on_close`) hear of every lost socket: what rode on it is gone either way."""

    tcp_link = True  # what node/sources.py traces a message's arrival to

    def __init__(self, transport: "TcpTransport", sock: HubSocket, peer: str, outgoing: bool,
                 target: Tcp | None = None):
        self.transport = transport
        self.node = transport.node
        self.peer = peer
        self.outgoing = outgoing
        self.target = target
        self.source: tuple | None = None  # (listener, remote IP) of an accepted connection
        self.id = os.urandom(16).hex()
        self.address = Address.random_local()
        self.closed = False  # for good: deleted, or a socket lost by a connection that is not persistent
        self._redialer: Any = None
        self._backoff = REDIAL_FIRST
        self._init_close_notifier()
        self._attach(sock)

    def _attach(self, sock: HubSocket) -> None:
        self.sock = sock
        self.decoder = FrameDecoder(self.transport.max_frame)
        self.partial_since: float | None = None  # when the incomplete frame the decoder holds began (budget's clock)
        self.partial_progress_at: float | None = None  # when a byte of it last came
        self.routed = False  # has routed a message (heartbeats do not count): idle timeout
        self.relayed = False  # has sent a message through a relay name of this node
        self._routes_hint = 0  # the routes' length in the last message (wire/transport.py decode_body)
        self.connected = True
        self.heard = True  # liveness (LinkMonitor): received something since the last tick
        self.spoke = True  # sent something since the last tick
        self.silent_ticks = 0
        self.stuck_ticks = 0  # ticks with bytes queued and no writer progress
        self.sent_mark: tuple = (0, None)  # writer.progress() at the last tick
        self.connected_at = self.node.clock.now()
        self.admitted_at = self.connected_at  # ConnectionBudget.admitted sets it for an accepted one
        self.writer = SocketWriter(sock, on_error=lambda exc: self.drop(sock))
        self.queue = LinkQueue(self.transport.queues)  # what answers and other links hold of its queue
        self.active_at = self.transport.budget.now()  # when it last routed a message (or connected)
        try:
            self.writer.write(PROTOCOL_VERSION_BYTE)
        except ConnectionClosed:
            pass  # the peer is already gone: its reader finds out at once

    def handle(self, msg: LocalMessage) -> None:
        frame, rest, size = _framed(frame_prefix(msg.onward[1:], msg.return_route, len(msg.payload)), msg.payload)
        if self._too_large(size):
            return
        backlog = self.writer.backlog
        if backlog >= DATAGRAM_BACKLOG and msg.datagram:  # what may be lost is, rather than delay the rest
            self.node.counters["datagrams_dropped_link_behind"] += 1
            return
        if (msg.answer or backlog >= ACCOUNT_FROM) and not self._admit(msg, size, backlog):
            return
        self._send(frame, rest)

    def forward(self, head: bytes, body, routes_end: int) -> bool:
        """Send on what another link received, behind `head` (node/shortcuts.py); False when
        it must take the long way instead: this link is so far behind that its queue's
        admission decides."""
        if self.writer.backlog >= ACCOUNT_FROM:
            return False
        payload = body[routes_end:]  # its length and bytes, not decoded
        frame, rest, size = _framed((encode_frame_header(len(head) + len(payload)), head), payload)
        if not self._too_large(size):
            self._send(frame, rest)
        return True

    def _too_large(self, frame_size: int) -> bool:
        if frame_size - 4 <= self.transport.max_frame:
            return False
        self.node.counters["dropped_too_large"] += 1  # the peer would close the link for it
        log.debug("dropped a message of %d bytes for %s: over the frame limit", frame_size - 4, self.peer)
        return True

    def _send(self, frame: bytes, rest=None) -> None:
        self.spoke = True
        try:
            self.writer.write(frame, rest)
        except ConnectionClosed:
            self.node.counters["dropped_closed_connection"] += 1

    def _admit(self, msg: LocalMessage, size: int, backlog: int) -> bool:
        """May `msg` join this link's queue (node/transport/queues.py)? Asked for every answer, and for
        anything else once the link is ACCOUNT_FROM behind; what it admits is held until the
        kernel takes it."""
        queue = self.queue
        end = self.writer.sent + backlog + size
        queue.release(self.writer.sent)
        if msg.answer:
            if not queue.admit_answer(size):
                return False
            queue.hold(end, ANSWERS, size)
            return True
        source = arrival_link(self.node, msg.origin_route or msg.return_route)
        if source is None or source is self:
            return True  # this node's own traffic: portal streams, bounded by their windows
        key: Any
        if msg.peer is not None:  # proved over a secure channel: one share per identity, whatever its links
            key = msg.peer
        else:
            key = source.address if not source.outgoing else (source.address, msg.return_route[1:2])
        if queue.over_share(key, size):
            self._over_share(source)
            return False
        queue.hold(end, key, size)
        return True

    def _over_share(self, source: "TcpConnection") -> None:
        """`source` has filled this link beyond its share. Which link is at fault: a source
        that carries nothing and that this node did not dial is pushing (a flood through a
        relay name): it is cut off. Otherwise, when this link carries nothing, it is the one
        not reading what it asked for (answers through a relay it never reads): it is
        closed. A link that carries something (a registration, channels, streams) is never
        closed for another's traffic: then the message is dropped."""
        counters = self.node.counters
        if not source.outgoing and not source.carries():
            reason, closing = "keeps filling", source
        elif not self.carries():
            reason, closing = "does not read what it is sent through", self
        else:
            counters["dropped_over_share"] += 1
            return
        if closing.connected:
            counters["links_cut_off"] += 1
            log.warning("closing the connection %s %s: it %s the link to %s, %d bytes behind",
                        "to" if closing.outgoing else "from", closing.peer, reason,
                        self.peer if closing is source else source.peer, self.writer.backlog)
            closing.drop(closing.sock)  # at once: its reader (often the caller) reads no more

    def start_reading(self) -> None:
        """Frames are read, decoded and routed in the hub's callback (`_readable`): no
        greenlet waits on a link, and a message through this node costs no switch."""
        self.sock.read_by(self._readable)

    def _readable(self) -> None:
        sock = self.sock
        try:
            data = sock.recv_now(RECV_SIZE)
            if data is None:
                return  # woken for nothing
            if not data:
                self.drop(sock)
                return
            self.heard = True
            frames = self.decoder.feed(data)
        except WireError as exc:
            self.node.counters["bad_frames"] += 1
            log.warning("closing connection %s from %s: %s", self.id, self.peer, exc)
            self.drop(sock)
            return
        except OSError as exc:
            log.debug("connection %s to %s failed: %s", self.id, self.peer, exc)
            self.drop(sock)
            return
        if self.decoder.incomplete or self.partial_since is not None:
            self.transport.budget.incomplete_changed(self, bool(frames))
            if not self.connected:
                return  # closed for its partial frame: what else it sent is not delivered
        if frames:
            self._deliver(sock, frames, 0)

    def _deliver(self, sock: HubSocket, frames: list, start: int) -> None:
        """Route frames[start:], YIELD_EVERY at a time: after each such slice the socket rests
        and the rest waits for the next turn of the loop, so others' I/O is served between."""
        end = min(start + YIELD_EVERY, len(frames))
        node = self.node
        route, shortcuts, counters = node.route, node.shortcuts, node.counters
        batch = end - start > 1  # what they cause is written once, at the end of this turn
        Batch.depth += batch
        routed = False
        try:
            for frame in frames[start:end]:
                if not frame:
                    continue  # a heartbeat
                routes_end = self._routes_hint + 1
                known = shortcuts.get(self, frame, routes_end) if routes_end > 1 else None
                payload_start = payload_at(frame, routes_end) if known is not None else -1
                if known is not None and payload_start >= 0:  # routes seen before, a well-formed payload
                    link = known.link
                    if link is None or not link.forward(known.head, frame, routes_end):
                        route(LocalMessage(known.onward, known.return_route, bytes(frame[payload_start:])))
                else:  # the long way
                    try:
                        onward, return_route, payload, self._routes_hint = decode_body(frame, self._routes_hint)
                    except DecodeError as exc:  # one bad message: the framing is intact, the link stays
                        counters["dropped_bad_messages"] += 1
                        log.debug("dropped a message from %s: %s", self.peer, exc)
                        continue
                    if not onward:
                        continue
                    return_route = (self.address,) + return_route
                    shortcuts.learn(node, self, frame, self._routes_hint + 1, onward, return_route)
                    route(LocalMessage(onward, return_route, payload))  # what it changes, it forgets
                routed = True
                if sock is not self.sock or not self.connected:
                    return  # closed by what it caused: the rest of the read is not delivered
        finally:
            Batch.depth -= batch
            if routed:  # heartbeats do not count
                self.routed = True
                self.active_at = self.transport.budget.now()
        if end < len(frames):
            sock.pause_reading()
            gevent.get_hub().loop.run_callback(self._deliver_rest, sock, frames, end)
        elif start:
            sock.resume_reading()

    def _deliver_rest(self, sock: HubSocket, frames: list, start: int) -> None:
        if sock is self.sock and self.connected:
            self._deliver(sock, frames, start)

    def drop(self, sock: HubSocket | None = None) -> None:
        """The socket (`sock`, or the current one) is lost: closed by the peer, failed, or
        found dead. A persistent connection dials again; any other closes."""
        if not self.connected or (sock is not None and sock is not self.sock):
            return
        if self.target is None or self.closed:
            self.close()
            return
        self.connected = False
        self.writer.close()
        self.queue.clear()
        self.sock.close()
        self.transport.budget.forget(self)
        self._notify_closed()
        self._init_close_notifier()  # the next socket's watchers
        log.info("connection %s to %s lost, dialling again", self.id, self.peer)
        if self.node.clock.now() - self.connected_at >= REDIAL_STABLE:
            self._backoff = REDIAL_FIRST  # it had been up a while: a new failure, a fresh start
        self._redialer = gevent.spawn(self._redial)

    def _redial(self) -> None:
        while not self.closed:
            self.node.clock.sleep(self._backoff * random.uniform(0.5, 1.0))
            self._backoff = min(self._backoff * 2, REDIAL_MAX)
            try:
                sock = connect_tcp(self.target)  # type: ignore[arg-type]  # a persistent connection has one
            except RouteError as exc:
                log.debug("connection %s: %s", self.id, exc)
                continue
            if self.closed:
                sock.close()
                return
            self._redialer = None
            self._attach(sock)
            self.node.shortcuts.clear()  # learnt of the last socket, which it marked `relayed`
            self.node.counters["links_redialled"] += 1
            log.info("connection %s to %s is back", self.id, self.peer)
            self.start_reading()
            return

    def close(self) -> None:
        if self.closed and not self.connected:
            return
        self.closed = True
        was_connected, self.connected = self.connected, False
        if self._redialer is not None and self._redialer is not gevent.getcurrent():
            self._redialer.kill(block=False)
        self.node.unregister(self.address)
        self.transport.connections.pop(self.id, None)
        self.writer.close()
        self.queue.clear()
        self.sock.close()
        self.transport.budget.forget(self)
        if was_connected:
            self._notify_closed()

    def stop(self) -> None:
        self.close()

    def carries(self) -> bool:
        """Does anything ride on this link: a relay registration, a secure channel, a portal
        stream (each watches the link it rides on)? Such a link is never evicted."""
        return bool(self._close_callbacks)

    def describe(self) -> dict:
        return {"id": self.id, "type": "TCP",
                "mode": "Remote connection" if self.outgoing else "Incoming connection",
                "socket_address": self.peer, "worker_address": str(self.address),
                "status": "connected" if self.connected else "reconnecting",
                "persistent": self.target is not None}


class TcpListener:
    def __init__(self, transport: "TcpTransport", hostport: str):
        self.transport = transport
        self.id = os.urandom(16).hex()
        self.server, self.address = start_server(hostport, self._accept)

    def _accept(self, sock: HubSocket, peer) -> None:
        source = source_address(peer[0])
        if not self.transport.budget.admit(self, source, self.transport.connections.values()):
            sock.reset()
            return
        conn = self.transport.adopt(sock, f"{peer[0]}:{peer[1]}", outgoing=False)
        if conn.closed:  # reset before we could greet it: nothing to count
            return
        conn.source = (self, source)
        self.transport.budget.admitted(conn)
        conn.start_reading()

    def close(self) -> None:
        self.server.stop()
        self.transport.listeners.pop(self.id, None)

    def describe(self) -> dict:
        return {"id": self.id, "type": "TCP", "mode": "Listening",
                "socket_address": self.address, "worker_address": ""}


class TcpTransport:
    def __init__(self, node, max_frame: int = DEFAULT_MAX_FRAME, link_timeout: float = DEFAULT_LINK_TIMEOUT,
                 limits: Limits = Limits()):
        self.node = node
        self.max_frame = max_frame
        self.listeners: dict[str, TcpListener] = {}
        self.connections: dict[str, TcpConnection] = {}
        self.budget = ConnectionBudget(limits, node.counters, node.clock.now)
        self.queues = QueueBudget(limits, node.counters)
        self.monitor = LinkMonitor(self.connections.values, node.counters, link_timeout, self._tick, node.clock)
        self._connecting = SingleFlight()

    def _tick(self, conn: TcpConnection) -> bool:
        """Each liveness tick: forget what a link that caught up held, then its budgets."""
        conn.queue.release(conn.writer.sent)
        return self.budget.check(conn)

    def listen(self, hostport: str) -> TcpListener:
        listener = TcpListener(self, hostport)
        self.listeners[listener.id] = listener
        return listener

    def adopt(self, sock: HubSocket, peer: str, outgoing: bool, target: Tcp | None = None) -> TcpConnection:
        conn = TcpConnection(self, sock, peer, outgoing, target)
        if conn.closed:  # gone before we could greet it; its reader ends at once
            return conn
        self.node.register(conn)
        self.connections[conn.id] = conn
        return conn

    def connect(self, target: Tcp, persistent: bool = False) -> TcpConnection:
        """A new outgoing connection to target, with its reader running; a persistent one
        dials again whenever it is lost, until it is closed."""
        sock = connect_tcp(target)
        conn = self.adopt(sock, target.hostport, outgoing=True, target=target if persistent else None)
        if conn.closed:  # reset before our greeting went out: a caller must not wait on it
            raise RouteError(f"connection to {target.hostport} was reset at once")
        conn.start_reading()
        return conn

    def connection_to(self, target: Tcp) -> TcpConnection:
        """An open outgoing connection to target, reused when one exists; connections to
        the same target asked for at once are one."""
        for conn in self.connections.values():
            if conn.outgoing and conn.peer == target.hostport and conn.connected:
                return conn
        return self._connecting.run(target.hostport, lambda: self.connect(target))

    def find(self, ident: str):
        """A listener by id or socket address, or a connection by id or worker address."""
        for listener in self.listeners.values():
            if ident in (listener.id, listener.address):
                return listener
        for conn in self.connections.values():
            if ident in (conn.id, str(conn.address), conn.address.inner.decode()):
                return conn
        raise NotFound(f"no TCP listener or connection {ident!r}")

    def close(self) -> None:
        self.monitor.stop()
        for listener in list(self.listeners.values()):
            listener.close()
        for conn in list(self.connections.values()):
            conn.close()
