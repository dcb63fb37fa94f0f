"""Relays ("forwarders"): a name at a reachable node that forwards to a node that dials out.

The relay node runs `forwarding_service`; a registration creates a `forward_to_<name>`
worker whose forward route is the registration's return route. The registering node runs
a `RelayClient` that owns the registration: it keeps it alive with pings and re-creates it
(new connection, new registration) with bounded, jittered backoff whenever it is lost.
"""

from __future__ import annotations

import logging
import random

import gevent
from gevent.event import AsyncResult, Event

from appliance.node.errors import AddressInUse, NodeError, NotFound, RequestTimeout, RouteError
from appliance.node.message import LocalMessage
from appliance.node.links import watch_link
from appliance.node.worker import Worker
from appliance.wire import relay as relay_wire
from appliance.wire.address import Address, route_text
from appliance.wire.errors import DecodeError

log = logging.getLogger(__name__)

SERVICE = "forwarding_service"


class RelayWorker(Worker):
    """`forward_to_<name>` on the relay node: swaps itself for the registered route."""

    def __init__(self, service: "ForwardingService", address: str, forward_route, owner):
        self.service = service
        self.address = Address.local(address)
        self.forward_route = forward_route
        self.unwatch = None  # stops watching the link (TCP connection or channel) it came over
        self.owner = owner  # identifier of the registering node, when it came over a secure channel

    def handle(self, msg: LocalMessage) -> None:
        self.service.node.route(LocalMessage(self.forward_route + msg.onward[1:], msg.return_route,
                                             msg.payload, msg.peer))

    def stop(self) -> None:
        self.service.relays.pop(self.address.inner.decode(), None)

    @property
    def alive(self) -> bool:
        """Its first hop (a TCP connection or a secure channel) still exists on this node."""
        return self.forward_route[0] in self.service.node.workers

    def describe(self) -> dict:
        return {"name": self.address.inner.decode(), "remote_route": route_text(self.forward_route),
                "direction": "incoming", "owner": self.owner}


class ForwardingService(Worker):
    def __init__(self, node, policy=None):
        self.node = node
        self.address = Address.local(SERVICE)
        self.relays: dict[str, RelayWorker] = {}
        # policy(peer identifier or None, relay address) -> reason to refuse, or None to allow
        self.policy = policy

    def handle(self, msg: LocalMessage) -> None:
        try:
            name = relay_wire.decode_request(msg.payload)
        except DecodeError as exc:
            self._refuse(msg, f"bad registration: {exc}")
            return
        refusal = self.policy(msg.peer, name) if self.policy else None
        if refusal:
            self.node.counters["unauthorized"] += 1
            self._refuse(msg, refusal)
            return
        existing = self.relays.get(name)
        if existing is not None:
            same_owner = existing.owner is not None and existing.owner == msg.peer
            if existing.alive and existing.forward_route != msg.return_route and not same_owner:
                self._refuse(msg, f"relay {name} already exists at node {self.node.name}")
                return
            self._remove(existing)  # stale, re-registered from the same route, or taken over by its owner
        elif Address.local(name) in self.node.workers:
            self._refuse(msg, f"address {name} is in use at node {self.node.name}")
            return
        relay = RelayWorker(self, name, msg.return_route, msg.peer)
        self.node.register(relay)
        self.relays[name] = relay
        if msg.return_route:
            relay.unwatch = watch_link(self.node, msg.return_route[0], lambda _link: self._remove(relay))
        log.info("relay %s registered, forwarding to %s", name, route_text(msg.return_route))
        self.node.send(msg.return_route, relay_wire.RelayReply(True, name).encode(), (relay.address,))

    def _refuse(self, msg: LocalMessage, reason: str) -> None:
        log.info("relay registration refused: %s", reason)
        self.node.send(msg.return_route, relay_wire.RelayReply(False, reason).encode(), (self.address,))

    def _remove(self, relay: RelayWorker) -> None:
        if relay.unwatch is not None:
            relay.unwatch()
        if self.relays.get(relay.address.inner.decode()) is relay:
            del self.relays[relay.address.inner.decode()]
            self.node.unregister(relay.address)
            log.info("relay %s removed", relay.address.inner.decode())


class RelayRefused(NodeError):
    """The relay node said no (name taken, not allowed)."""


class RelayClient(Worker):
    """The registering side. `resolve_at()` returns a `Resolved` route to the relay node."""

    PING_INTERVAL = 10.0
    PING_TIMEOUT = 10.0
    MAX_MISSED_PINGS = 3
    REGISTER_TIMEOUT = 10.0
    BACKOFF_START = 0.25
    BACKOFF_MAX = 2.0  # a relay back after a restart is found within 2 s

    def __init__(self, node, name: str, at_text: str, resolve_at):
        self.node = node
        self.name = name
        self.relay_address = relay_wire.relay_address(name)
        self.at_text = at_text
        self._resolve_at = resolve_at
        self.address = Address.random_local()
        self.remote_route = None
        self.first_hop = None  # the link the registration rides on (TCP connection or channel)
        self._owned: list = []  # connections opened for this relay, closed when it is lost
        self.registrations = 0
        self._reply: AsyncResult | None = None
        self._stopped = Event()
        self._greenlet = None

    # --- messages ----------------------------------------------------------------------------
    def handle(self, msg: LocalMessage) -> None:
        if len(msg.onward) > 1:
            self.node.route(msg.step())  # traffic through the relay: on to the local service
        elif self._reply is not None and not self._reply.ready():
            self._reply.set(msg)  # a registration reply

    # --- life --------------------------------------------------------------------------------
    def start(self, wait: bool = True) -> str:
        """Keep the registration alive from now on. With `wait`, register once first and
        give its errors to the caller; without, the first attempt is made in the background
        (a service starting before its relay node must simply retry)."""
        self.node.register(self)
        if wait:
            try:
                self._register()
            except Exception:
                self.stop()
                raise
        self._greenlet = gevent.spawn(self._keep_alive)
        return self.relay_address

    def stop(self) -> None:
        self._stopped.set()
        self.node.unregister(self.address)
        if self._greenlet is not None and self._greenlet is not gevent.getcurrent():
            self._greenlet.kill(block=False)
        self._drop_connection()

    def _register(self) -> None:
        route, self._owned = self._resolve_at()
        self.first_hop = route[0] if route else None
        reply_result = self._reply = AsyncResult()
        # a link lost while we wait (a relay that accepts, then dies) fails the attempt now
        unwatch = watch_link(self.node, self.first_hop, lambda _link: reply_result.set_exception(
            RouteError(f"the connection to {self.at_text} was lost during the relay registration")))
        self.node.send(route + (Address.local(SERVICE),),
                       relay_wire.encode_request(self.relay_address), (self.address,))
        try:
            msg = reply_result.get(timeout=self.REGISTER_TIMEOUT)
        except gevent.Timeout:
            self._drop_connection()
            raise RequestTimeout(f"no answer from {self.at_text} to the relay registration "
                                 f"within {self.REGISTER_TIMEOUT:g} s") from None
        finally:
            if unwatch is not None:
                unwatch()
        try:
            reply = relay_wire.RelayReply.decode(msg.payload)
        except DecodeError as exc:
            raise RelayRefused(f"bad reply to the relay registration: {exc}") from None
        if not reply.ok:
            raise RelayRefused(reply.text)
        self.remote_route = msg.return_route
        self.registrations += 1
        log.info("relay %s registered at %s", self.relay_address, self.at_text)

    def _keep_alive(self) -> None:
        backoff = self.BACKOFF_START
        while not self._stopped.is_set():
            if self.remote_route is None:
                try:
                    self._register()
                    backoff = self.BACKOFF_START
                except Exception as exc:  # noqa: BLE001 - any failure: wait and try again
                    self._drop_connection()  # what this attempt opened must not outlive it
                    log.warning("relay %s: registration at %s failed: %s (retry in %.1f s)",
                                self.relay_address, self.at_text, exc, backoff)
                    self._stopped.wait(backoff * random.uniform(0.5, 1.0))
                    backoff = min(backoff * 2, self.BACKOFF_MAX)
                    continue
            self._watch()

    def _watch(self) -> None:
        """Return when the registration is lost: connection closed or pings unanswered."""
        lost = Event()
        unwatch = watch_link(self.node, self.first_hop, lambda _link: lost.set()) if self.first_hop else None
        missed = 0
        ping_route = self.remote_route[:-1] + (Address.local("echo"),)
        while not self._stopped.is_set() and not lost.wait(self.PING_INTERVAL):
            try:  # a link lost while the ping waits ends the wait at once
                if self.node.request(ping_route, b"\x00", self.PING_TIMEOUT, cancel=lost) is None:
                    break
                missed = 0
                continue
            except RequestTimeout:
                missed += 1
            if missed >= self.MAX_MISSED_PINGS:
                log.warning("relay %s: %d pings unanswered, reconnecting", self.relay_address, missed)
                break
        if unwatch is not None:
            unwatch()
        self.remote_route = None
        self._drop_connection()

    def _drop_connection(self) -> None:
        for connection in self._owned:
            connection.close()
        self._owned = []
        self.first_hop = None

    def describe(self) -> dict:
        return {"name": self.relay_address, "at": self.at_text,
                "remote_route": route_text(self.remote_route) if self.remote_route else "(reconnecting)",
                "registrations": self.registrations, "direction": "outgoing"}


class Relays:
    """The registering side's relays on one node, by name."""

    def __init__(self, node):
        self.node = node
        self.clients: dict[str, RelayClient] = {}

    def create(self, name: str, at_text: str, resolve_at, wait: bool = True) -> str:
        relay_wire.validate_name(name)
        address = relay_wire.relay_address(name)
        if address in self.clients:
            raise AddressInUse(f"this node already has a relay {address}")
        client = RelayClient(self.node, name, at_text, resolve_at)
        self.clients[address] = client
        try:
            return client.start(wait)
        except Exception:
            del self.clients[address]
            raise

    def delete(self, name: str) -> None:
        client = self.clients.pop(relay_wire.relay_address(name), None)
        if client is None:
            raise NotFound(f"no relay {name!r} on this node")
        client.stop()
