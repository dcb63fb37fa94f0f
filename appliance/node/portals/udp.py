"""UDP portals: a UDP inlet next to the clients, a UDP outlet next to the service.

A flow is one client address at the inlet. Its datagrams go, each whole, as Datagram
messages (wire/udp_portal.py) to the outlet service, which gives each flow a UDP socket of
its own: the service sees one source port per client, and what it answers goes back to
that client only, from the outlet's per-flow worker. Nothing is retransmitted or queued
for long: a datagram the route cannot take now (not resolved yet beyond a few, a link that
is behind, a full socket buffer) is dropped and counted, never a delay for the TCP streams
on the same links. Flows end after `idle` seconds without a datagram either way, and each
portal holds at most `max_flows` of them.
"""

from __future__ import annotations

import logging
from collections import Counter

import gevent

from appliance.node.lograte import LogRate
from appliance.node.message import LocalMessage
from appliance.node.portals.access import access_refusal
from appliance.node.sources import message_source
from appliance.node.transport.links import watch_link
from appliance.node.transport.udp import bind_udp, connect_udp
from appliance.node.worker import Worker
from appliance.wire import udp_portal as wire
from appliance.wire.address import Address
from appliance.wire.errors import DecodeError
from appliance.wire.multiaddr import parse_bind, parse_hostport

log = logging.getLogger(__name__)

DEFAULT_IDLE = 60.0
DEFAULT_MAX_FLOWS = 1024
PENDING = 16  # datagrams a flow holds while its route is being resolved (or its target looked up)
PENDING_BYTES = 1 << 20  # ...and all the flows of an inlet together, in bytes
REFUSED_RETRY = 5.0  # a flow the outlet refused asks again after this (the outlet may have room by then)
SWEEP_EVERY = 5.0  # seconds between looks for idle flows (at most a quarter of the idle timeout)
LOG_EVERY = 60.0
SOURCE_SHARE = 4  # one inlet node may hold a quarter of an outlet's flows once it is half full


class UdpTally:
    """What a UDP portal counts: datagrams and bytes each way, drops by reason, flows."""

    def __init__(self, counters):
        self._counters = counters  # the node's: udp_datagrams_dropped, all portals together
        self.to_service = self.from_service = 0  # datagrams (at an inlet: from the clients / to them)
        self.bytes_to_service = self.bytes_from_service = 0
        self.flows_opened = 0
        self.dropped: Counter = Counter()

    def drop(self, reason: str, count: int = 1) -> None:
        self.dropped[reason] += count
        self._counters["udp_datagrams_dropped"] += count

    def describe(self) -> dict:
        return {"datagrams_in": self.to_service, "datagrams_out": self.from_service,
                "bytes_in": self.bytes_to_service, "bytes_out": self.bytes_from_service,
                "flows_total": self.flows_opened, "dropped": dict(self.dropped)}


class _Flows:
    """A portal's flows, by key, with their idle timeout and their bound."""

    def __init__(self, node, idle: float, max_flows: int):
        self.node, self.idle, self.max_flows = node, idle, max_flows
        self.by_key: dict = {}
        self._sweeper = node.clock.every(min(SWEEP_EVERY, idle / 4), self._sweep)

    def _sweep(self) -> None:
        """In the hub: close the flows that carried nothing for `idle` seconds."""
        now = self.node.clock.now()
        for flow in [f for f in self.by_key.values() if now - f.active_at >= self.idle]:
            flow.close()

    def forget(self, key, flow) -> None:
        """A flow that closed: gone from the table (unless another took its key since)."""
        if self.by_key.get(key) is flow:
            del self.by_key[key]

    def close(self) -> None:
        self._sweeper.stop()
        for flow in list(self.by_key.values()):
            flow.close()


# --- the inlet -----------------------------------------------------------------------------------
class UdpInlet:
    """Listens on a UDP HOST:PORT; each client address is a flow to the outlet over the first
    of `routes` ((text, resolve()) pairs) that resolves."""

    def __init__(self, node, bind: str, routes: list, alias: str, authorized=None, idle: float = DEFAULT_IDLE,
                 max_flows: int = DEFAULT_MAX_FLOWS):
        self.node, self.alias, self.authorized, self.routes = node, alias, authorized, routes
        self.route_text = " | ".join(text for text, _ in routes)
        self.tally = UdpTally(node.counters)
        self._log = LogRate(log, LOG_EVERY)
        self.socket = bind_udp(parse_bind(bind), self._datagram)  # first: a busy port leaves nothing behind
        self.bind = self.socket.address
        self.flows = _Flows(node, idle, max_flows)
        self.pending_bytes = 0  # held by its flows while their routes are resolved

    def _datagram(self, data: bytes, client) -> None:
        """In the hub: a client's datagram."""
        self.tally.to_service += 1
        self.tally.bytes_to_service += len(data)
        if len(data) > wire.MAX_DATAGRAM:  # an IPv6 datagram may be a few bytes larger than any portal carries
            self._drop("too_large")
            return
        flow = self.flows.by_key.get(client)
        if flow is None:
            if len(self.flows.by_key) >= self.flows.max_flows:
                self._drop("too_many_flows", "inlet %s (%s): %d flows open, a new client's datagram dropped",
                           self.alias, self.bind, len(self.flows.by_key))
                return
            flow = self.flows.by_key[client] = InletFlow(self, client)
        flow.to_outlet(data)

    def _drop(self, reason: str, *message) -> None:
        self.tally.drop(reason)
        if message:
            self._log.warning(reason, *message)

    def close(self) -> None:
        self.flows.close()
        self.socket.close()

    def describe(self) -> dict:
        return {"alias": self.alias, "bind_address": self.bind, "outlet_route": self.routes[0][0],
                "outlet_routes": [text for text, _ in self.routes], "flows": len(self.flows.by_key),
                "authorized": sorted(self.authorized or ()), "idle_timeout": self.flows.idle,
                **self.tally.describe()}


class InletFlow(Worker):
    """One client of a UDP inlet: its route to the outlet, resolved when first needed and
    again after the link it starts with closed."""

    def __init__(self, inlet: UdpInlet, client):
        self.inlet, self.node, self.client = inlet, inlet.node, client
        self.address = Address.random_local()
        self.route = None
        self.refused_at = None  # when the outlet refused this flow: its datagrams are dropped for a while
        self.active_at = self.node.clock.now()
        self._pending: list = []
        self._resolving = None
        self._unwatch = None
        self.closed = False
        self.node.register(self)
        inlet.tally.flows_opened += 1

    def to_outlet(self, data: bytes) -> None:
        now = self.active_at = self.node.clock.now()
        if self.refused_at is not None:
            if now - self.refused_at < REFUSED_RETRY:
                self.inlet._drop("refused")
                return
            self.refused_at = None
        if self.route is None:
            if len(self._pending) >= PENDING or self.inlet.pending_bytes + len(data) > PENDING_BYTES:
                self.inlet._drop("no_route")
                return
            self._pending.append(data)
            self.inlet.pending_bytes += len(data)
            if self._resolving is None:
                self._resolving = gevent.spawn(self._resolve)
            return
        self.node.route(LocalMessage(self.route, (self.address,), wire.encode_datagram(data), datagram=True))

    def _resolve(self) -> None:
        """In a greenlet of its own, never killed: it may be waiting on a channel that other
        routes share (node/singleflight.py), whose waiters must not get its exit."""
        try:
            errors = []
            for text, resolve in self.inlet.routes:
                try:
                    route = resolve()
                except Exception as exc:  # noqa: BLE001 - whatever broke, the next route, then the next datagram
                    errors.append(f"{text}: {exc}")
                    continue
                if self.closed:
                    return
                self.route = route
                self._unwatch = watch_link(self.node, route[0], self._route_lost) if route else None
                pending = self._take_pending()
                for data in pending:
                    self.to_outlet(data)
                return
            dropped = len(self._take_pending())
            if dropped and not self.closed:
                self.inlet.tally.drop("no_route", dropped)
                self.inlet._log.warning("no_route", "inlet %s (%s): no route to the outlet (%s); %d datagrams "
                                        "dropped", self.inlet.alias, self.inlet.bind, "; ".join(errors), dropped)
        finally:
            self._take_pending()
            self._resolving = None

    def _take_pending(self) -> list:
        pending, self._pending = self._pending, []
        self.inlet.pending_bytes -= sum(len(data) for data in pending)
        return pending

    def _route_lost(self, _link) -> None:
        """The link the route starts with closed: the next datagram resolves it again."""
        self.route, self._unwatch = None, None

    def handle(self, msg: LocalMessage) -> None:
        """From the outlet's flow: a datagram for our client, or a refusal. Only what comes
        back over the link (or secure channel) our route starts with is taken (an outlet on
        this node itself answers from its flow's local address)."""
        if self.route is None or (len(self.route) > 1 and msg.return_route[:1] != self.route[:1]):
            self.node.counters["portal_messages_from_wrong_route"] += 1
            return
        try:
            tag, value = wire.decode(msg.payload)
        except DecodeError:
            self.node.counters["bad_portal_messages"] += 1
            return
        if self.inlet.authorized and msg.peer not in self.inlet.authorized:
            self.node.counters["unauthorized"] += 1
            self.inlet._drop("unauthorized", "inlet %s: a datagram from %s, which is not authorized",
                             self.inlet.alias, msg.peer or "an unauthenticated peer")
            return
        if tag == wire.REFUSED_TAG:
            self.refused_at = self.node.clock.now()
            self.inlet._log.warning("refused", "inlet %s (%s): the outlet refused client %s: %s",
                                    self.inlet.alias, self.inlet.bind, self.client, value)
            return
        self.active_at = self.node.clock.now()
        if self.inlet.socket.sendto(value, self.client):
            self.inlet.tally.from_service += 1
            self.inlet.tally.bytes_from_service += len(value)
        else:
            self.inlet._drop("socket_full")

    def close(self) -> None:
        self.closed = True
        self.inlet.flows.forget(self.client, self)
        self.node.unregister(self.address)
        if self._unwatch is not None:
            self._unwatch()
        self._take_pending()  # a resolution still under way finds the flow closed and sends nothing


# --- the outlet ----------------------------------------------------------------------------------
class UdpOutlet(Worker):
    """The service at `/service/<name>`: each inlet flow (a return route) gets a UDP socket of
    its own to the target."""

    def __init__(self, node, name: str, target: str, alias: str, authorized=None, allow=None, attribute_sets=None,
                 idle: float = DEFAULT_IDLE, max_flows: int = DEFAULT_MAX_FLOWS):
        self.node, self.alias = node, alias
        self.address = Address.local(name)
        self.target_text, self.target = target, parse_hostport(target)
        self.authorized, self.allow, self.attribute_sets = authorized, allow or {}, attribute_sets
        self.tally = UdpTally(node.counters)
        self.flows = _Flows(node, idle, max_flows)
        self._log = LogRate(log, LOG_EVERY)

    def handle(self, msg: LocalMessage) -> None:
        try:
            tag, data = wire.decode(msg.payload)
        except DecodeError:
            self.node.counters["bad_portal_messages"] += 1
            return
        if tag != wire.DATAGRAM_TAG or not msg.return_route:  # nowhere to answer: not an inlet's flow
            self.node.counters["bad_portal_messages"] += 1
            return
        self.tally.to_service += 1
        self.tally.bytes_to_service += len(data)
        flow = self.flows.by_key.get(msg.return_route)
        if flow is not None and flow.peer != msg.peer:  # another identity over the same route: not its flow
            flow.close()
            flow = None
        if flow is None:
            flow = self._open(msg)
            if flow is None:
                return
        flow.to_target(data)

    def _open(self, msg: LocalMessage):
        refusal = access_refusal(msg.peer, self.authorized, self.allow, self.attribute_sets)
        source = msg.peer or message_source(self.node, msg.return_route)
        if refusal is None and len(self.flows.by_key) >= self.flows.max_flows:
            refusal = f"{len(self.flows.by_key)} flows open (the outlet's limit)"
        elif refusal is None and self._flows_from(source) >= self.flows.max_flows // SOURCE_SHARE:
            refusal = f"{self.flows.max_flows // SOURCE_SHARE} flows open for one inlet node (its share)"
        if refusal is not None:
            self.tally.drop("refused")
            self._log.warning(msg.peer, "UDP outlet %s: refused a flow from %s: %s", self.alias,
                              msg.peer or message_source(self.node, msg.return_route) or "a stranger", refusal)
            self.node.answer(msg, wire.encode_refused(refusal), self.address)
            return None
        flow = self.flows.by_key[msg.return_route] = OutletFlow(self, msg.return_route, msg.peer, source)
        return flow

    def _flows_from(self, source) -> int:
        """Flows open for one inlet node (the peer identity of a secure channel, else the link),
        counted once the outlet is half full: then no one source takes the rest."""
        if len(self.flows.by_key) < self.flows.max_flows // 2:
            return 0
        return sum(1 for flow in self.flows.by_key.values() if flow.source == source)

    def stop(self) -> None:
        self.flows.close()

    def describe(self) -> dict:
        return {"alias": self.alias, "address": f"/service/{self.address.inner.decode()}",
                "target": self.target_text, "flows": len(self.flows.by_key),
                "authorized": sorted(self.authorized or ()), "allow": self.allow, "idle_timeout": self.flows.idle,
                **self.tally.describe()}


class OutletFlow(Worker):
    """One inlet flow at the outlet: a UDP socket connected to the target, and the route back."""

    def __init__(self, outlet: UdpOutlet, route: tuple, peer: str | None, source=None):
        self.outlet, self.node, self.route, self.peer, self.source = outlet, outlet.node, route, peer, source
        self.address = Address.random_local()
        self.active_at = self.node.clock.now()
        self.socket = None
        self._pending: list = []
        self.closed = False
        self.node.register(self)
        outlet.tally.flows_opened += 1
        self._unwatch = watch_link(self.node, route[0], lambda _link: self.close())
        gevent.spawn(self._connect)

    def _connect(self) -> None:
        try:
            sock = connect_udp(self.outlet.target, self._from_target)
        except Exception as exc:  # noqa: BLE001 - the target cannot be reached: this flow's datagrams are lost
            self.outlet._log.warning("target", "UDP outlet %s: %s", self.outlet.alias, exc)
            self.outlet.tally.drop("target_unreachable", len(self._pending))
            self.close()
            return
        if self.closed:
            sock.close()
            return
        self.socket = sock
        pending, self._pending = self._pending, []
        for data in pending:
            self.to_target(data)

    def to_target(self, data: bytes) -> None:
        self.active_at = self.node.clock.now()
        if self.socket is None:
            if len(self._pending) < PENDING:
                self._pending.append(data)
            else:
                self.outlet.tally.drop("no_route")
            return
        if not self.socket.send(data):
            self.outlet.tally.drop("socket_full")

    def _from_target(self, data: bytes, _address) -> None:
        """In the hub: the service answered this flow's client."""
        if len(data) > wire.MAX_DATAGRAM:  # an IPv6 service may send a few bytes more than a portal carries
            self.outlet.tally.drop("too_large")
            return
        self.active_at = self.node.clock.now()
        self.outlet.tally.from_service += 1
        self.outlet.tally.bytes_from_service += len(data)
        self.node.route(LocalMessage(self.route, (self.address,), wire.encode_datagram(data), datagram=True))

    def handle(self, msg: LocalMessage) -> None:
        self.node.counters["bad_portal_messages"] += 1  # the inlet writes to the outlet service, not here

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.outlet.flows.forget(self.route, self)
        self.node.unregister(self.address)
        if self._unwatch is not None:
            self._unwatch()
        if self.socket is not None:
            self.socket.close()
