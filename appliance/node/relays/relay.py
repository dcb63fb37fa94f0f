"""Relays ("forwarders"): a name at a reachable node that forwards to a node that dials out.

The relay node runs `forwarding_service`; a registration creates a `forward_to_<name>`
worker whose forward route is the registration's return route. The registering node runs
a `RelayClient` that owns the registration: it keeps it alive with pings and re-creates it
(new connection, new registration) with bounded, jittered backoff whenever it is lost.
"""

from __future__ import annotations

import hmac
import logging
import os
import random
import time
from collections import Counter
from typing import Any, ClassVar, Final

import gevent
from gevent.event import AsyncResult, Event

from appliance.limits.budgets import Limits
from appliance.limits.rate import KeyedBuckets
from appliance.node.errors import AddressInUse, BadArgument, NodeError, NotFound, RequestTimeout, RouteError
from appliance.node.message import LocalMessage
from appliance.node.transport.links import watch_link
from appliance.node.lograte import LogRate
from appliance.node.sources import arrival_link, message_source
from appliance.node.worker import Worker
from appliance.observe.condition import Condition
from appliance.wire import relay as relay_wire
from appliance.wire.address import Address, Route, route_text
from appliance.wire.buffer import Buffer
from appliance.wire.errors import DecodeError

log = logging.getLogger(__name__)

SERVICE: Final = "forwarding_service"
DEFAULT_GRACE = 30.0  # seconds a lost plain relay's name waits for its registrant
IDENTITY_NAME_KEPT = 600.0  # seconds an identity's lost name is safe from eviction by a full node
REFUSAL_LOG_EVERY = 3600.0  # a peer retrying in a loop is logged once an hour


class RelayWorker(Worker):
    """`forward_to_<name>` on the relay node: swaps itself for the registered route."""

    def __init__(self, service: "ForwardingService", address: str, forward_route, owner):
        self.service = service
        self.address = Address.local(address)
        self.forward_route = forward_route
        self.link = forward_route[0] if forward_route else None  # what the registration came over
        self.unwatch: Any = None  # stops watching that link (TCP connection or channel)
        self.owner = owner  # identifier of the registering node, when it came over a secure channel

    def handle(self, msg: LocalMessage) -> None:
        sender = arrival_link(self.service.node, msg.return_route)
        if sender is not None and not sender.relayed:  # it uses this node as a relay: worth a slot
            sender.relayed = True
        self.service.node.route(LocalMessage(self.forward_route + msg.onward[1:], msg.return_route,
                                             msg.payload, msg.peer))

    def readdress(self, onward: Route) -> Route:
        """All it does once its sender is marked as using this node as a relay (above)."""
        return self.forward_route + onward[1:]

    def stop(self) -> None:
        self.service.relays.pop(self.address.inner.decode(), None)

    @property
    def alive(self) -> bool:
        """Its first hop (a TCP connection or a secure channel) still exists on this node."""
        return self.link is None or self.link in self.service.node.workers

    def describe(self) -> dict:
        return {"name": self.address.inner.decode(), "remote_route": route_text(self.forward_route),
                "direction": "incoming", "owner": self.owner,
                "state": "up" if self.alive else "down"}  # down: its registrant's link is gone, the name kept


class Claim:
    """Who a relay name belongs to: the identity that registered it over a secure channel
    (for as long as this node runs), else whoever holds the secret of its last registration
    (while it is live, and for the grace period after its link is lost, so that the edge
    that lost its link gets its name back and a stranger cannot take it meanwhile)."""

    __slots__ = ("owner", "secret", "relay", "expires", "lost_at")

    def __init__(self, owner: str | None, secret: Buffer, relay: RelayWorker):
        self.owner = owner
        self.secret = secret
        self.relay: RelayWorker | None = relay  # None once its link is lost
        self.expires: float | None = None  # when the name is free again; None: not while held
        self.lost_at: float | None = None  # when its link was lost


class ForwardingService(Worker):
    """`forwarding_service`: registers relays, and keeps each name with its registrant.

    `offered` False (an edge node) refuses every registration: a node that is not meant to be
    a relay must not become one through a route a stranger writes (`forward_to_x/forwarding_service`)."""

    def __init__(self, node, policy=None, offered: bool = True, grace: float = DEFAULT_GRACE,
                 limits: Limits = Limits(), clock=None):
        self.node = node
        self.address = Address.local(SERVICE)
        self.relays: dict[str, RelayWorker] = {}
        self.claims: dict[str, Claim] = {}  # live and recently lost names
        # policy(registration message, relay address) -> reason to refuse, or None to allow
        self.policy = policy
        self.offered = offered
        self.grace = grace
        self.limits = limits
        self.clock = clock or time.monotonic
        self._per_link: Counter = Counter()  # live relays by the link they were registered over
        self._log = LogRate(log, REFUSAL_LOG_EVERY, self.clock)  # once per peer, not once per attempt
        self._rate = KeyedBuckets(limits.registrations_per_second_per_source, self.clock)

    def handle(self, msg: LocalMessage) -> None:
        if not self._rate.take(message_source(self.node, msg.return_route)):
            # a flood: not even a refusal, which would cost as much as the request
            self.node.counters["registrations_dropped"] += 1
            self._log.warning("flood", "dropping relay registrations: over %g a second from one source "
                              "(registrations_per_second_per_source)", self.limits.registrations_per_second_per_source)
            return
        try:
            name, secret = relay_wire.decode_request(msg.payload)
        except DecodeError as exc:
            self._refuse(msg, f"bad registration: {exc}")
            return
        refusal = self._refusal(msg, name, secret)
        if refusal:
            self._refuse(msg, refusal)
            return
        claim = self.claims.get(name)
        if claim is not None and claim.relay is not None:
            self._lose(claim.relay)  # taken over by its owner (say, over a new link)
        relay = RelayWorker(self, name, msg.return_route, msg.peer)
        self.node.register(relay)
        self.relays[name] = relay
        # the registrant proved the claim (or it is new): it keeps its secret, so a reply lost
        # on the way does not leave it with one that no longer works
        secret = claim.secret if claim is not None else os.urandom(relay_wire.SECRET_SIZE)
        self.claims[name] = Claim(msg.peer, secret, relay)
        self._per_link[relay.link] += 1
        if relay.link is not None:
            relay.unwatch = watch_link(self.node, relay.link, lambda _link: self._lose(relay))
        log.info("relay %s registered, forwarding to %s", name, route_text(msg.return_route))
        self.node.answer(msg, relay_wire.RelayReply(True, name, secret).encode(), relay.address)

    def _refusal(self, msg: LocalMessage, name: str, secret: Buffer) -> str | None:
        """Why this registration may not have `name`, or None."""
        here = f"at node {self.node.name}"
        if not self.offered:
            return f"node {self.node.name} is not a relay (give it a TCP listener address, or relay = true)"
        refusal = self.policy(msg, name) if self.policy else None
        if refusal:
            self.node.counters["unauthorized"] += 1
            return refusal
        claim = self._claim(name)
        if claim is not None:
            if claim.owner is not None and msg.peer != claim.owner:
                return f"relay {name} belongs to {claim.owner} {here}"
            same_route = claim.relay is not None and claim.relay.forward_route == msg.return_route
            if claim.owner is None and not same_route and not hmac.compare_digest(secret, claim.secret):
                return f"relay {name} is taken {here}"
            if same_route:
                return None
        elif Address.local(name) in self.node.workers:
            return f"address {name} is in use {here}"
        link = msg.return_route[0] if msg.return_route else None
        if self._per_link[link] >= self.limits.relays_per_connection:
            return f"too many relays over one connection {here} (at most {self.limits.relays_per_connection})"
        if claim is None and len(self.claims) >= self.limits.relays_per_node:
            self._make_room()
            if len(self.claims) >= self.limits.relays_per_node:
                return f"too many relays {here} (at most {self.limits.relays_per_node})"
        return None

    def _claim(self, name: str) -> Claim | None:
        """The name's claim, if it still holds."""
        claim = self.claims.get(name)
        if claim is None:
            return None
        if claim.relay is not None and not claim.relay.alive:
            self._lose(claim.relay)
        if claim.expires is not None and self.clock() >= claim.expires:
            del self.claims[name]
            return None
        return claim

    def _make_room(self) -> None:
        """Forget the names whose grace is over; if that frees nothing, the identity's name
        lost the longest ago, once lost for longer than IDENTITY_NAME_KEPT (names no one uses
        must not fill the node for good; a name within its grace is never given away)."""
        now = self.clock()
        for name in [n for n, c in self.claims.items() if c.expires is not None and now >= c.expires]:
            del self.claims[name]
        if len(self.claims) >= self.limits.relays_per_node:
            lost = [(c.lost_at, n) for n, c in self.claims.items()
                    if c.relay is None and c.owner is not None and c.lost_at is not None
                    and now - c.lost_at >= IDENTITY_NAME_KEPT]
            if lost:
                del self.claims[min(lost)[1]]
                self.node.counters["relay_names_forgotten"] += 1

    def release(self, owner: str) -> None:
        """The identity `owner` may no longer hold names here (removed from the project):
        its relays stop forwarding now, and its names are free."""
        for name, claim in list(self.claims.items()):
            if claim.owner == owner:
                if claim.relay is not None:
                    self._lose(claim.relay)
                del self.claims[name]
                log.info("relay %s released: %s may no longer hold it", name, owner)

    def _refuse(self, msg: LocalMessage, reason: str) -> None:
        self.node.counters["relays_refused"] += 1
        who = msg.peer or (msg.return_route[0] if msg.return_route else None)
        self._log.info(who, "relay registration refused: %s", reason)
        self.node.answer(msg, relay_wire.RelayReply(False, reason).encode(), self.address)

    def _lose(self, relay: RelayWorker) -> None:
        """The relay's link is lost (or it was taken over): stop forwarding; its name stays
        reserved for its owner (an identity: for good; a secret: for the grace period)."""
        if relay.unwatch is not None:
            relay.unwatch()
            relay.unwatch = None
        name = relay.address.inner.decode()
        if self.relays.get(name) is not relay:
            return
        del self.relays[name]
        self.node.unregister(relay.address)
        self._per_link[relay.link] -= 1
        if not self._per_link[relay.link]:
            del self._per_link[relay.link]
        claim = self.claims.get(name)
        if claim is not None and claim.relay is relay:
            claim.relay, claim.lost_at = None, self.clock()
            if claim.owner is None:
                claim.expires = claim.lost_at + self.grace
        log.info("relay %s removed", name)


class SecretBook:
    """The secrets of this node's relay registrations, by relay address, kept (by `save`)
    where the node finds them after a restart: a restarted edge takes its name back at once
    instead of waiting out the relay's grace period."""

    def __init__(self, data: dict | None = None, save=None):
        self._data = data if data is not None else {}
        self._save = save

    def get(self, address: str) -> bytes:
        try:
            return bytes.fromhex(str(self._data.get(address, "")))
        except ValueError:
            return b""  # a damaged entry: register as a stranger would, and keep the new one

    def put(self, address: str, secret: Buffer) -> None:
        if self._data.get(address) != secret.hex():
            self._data[address] = secret.hex()
            if self._save is not None:
                self._save(dict(self._data))


class RelayRefused(NodeError):
    """The relay node said no (name taken, not allowed)."""


class RelayClient(Worker):
    """The registering side. `resolve_at()` returns a `Resolved` route to the relay node."""

    PING_INTERVAL: ClassVar[float] = 10.0
    PING_TIMEOUT: ClassVar[float] = 10.0
    MAX_MISSED_PINGS: ClassVar[int] = 3
    REGISTER_TIMEOUT: ClassVar[float] = 10.0
    BACKOFF_START: ClassVar[float] = 0.25
    BACKOFF_MAX: ClassVar[float] = 2.0  # a relay back after a restart is found within 2 s
    REFUSED_BACKOFF_MAX: ClassVar[float] = 10.0  # a relay that said no (not a member, name taken) is asked less often

    def __init__(self, node, name: str, at_text: str, resolve_at, secrets: SecretBook | None = None,
                 only_one: bool = True):
        self.node = node
        self.name = name
        self.relay_address = relay_wire.relay_address(name)
        self.at_text = at_text
        self._resolve_at = resolve_at
        self.address = Address.random_local()
        self.remote_route: Any = None
        self.first_hop: Any = None  # the link the registration rides on (TCP connection or channel)
        self._owned: list = []  # connections opened for this relay, closed when it is lost
        self.registrations = 0
        self.reconnects = 0  # registrations lost (link closed, pings unanswered) and made again
        self.ping_rtt: float | None = None  # seconds, the last keep-alive ping's round trip
        self.condition = Condition()
        self._secrets = secrets or SecretBook()  # from registration replies: take the name back after a loss
        self._only_one = only_one  # the name's only relay node: a secret kept before 15 (by name alone) is its
        self._reply: AsyncResult | None = None
        self._stopped = Event()
        self._greenlet: Any = None

    # --- messages ----------------------------------------------------------------------------
    def handle(self, msg: LocalMessage) -> None:
        if len(msg.onward) > 1:
            self.node.route(msg.step())  # traffic through the relay: on to the local service
        elif self._reply is not None and not self._reply.ready():
            self._reply.set(msg)  # a registration reply

    # --- life --------------------------------------------------------------------------------
    def start(self, wait: bool = True) -> Exception | None:
        """Keep the registration alive from now on. With `wait`, register once first and
        return what failed (None when it worked; the keep-alive then tries again in the
        background); without, the first attempt is made in the background (a service
        starting before its relay node must simply retry)."""
        self.node.register(self)
        failed = None
        if wait:
            try:
                self._register()
            except Exception as exc:  # noqa: BLE001 - the caller decides; the keep-alive retries
                self._drop_connection()
                self.condition.down(str(exc) or type(exc).__name__)
                failed = exc
        self._greenlet = gevent.spawn(self._keep_alive)
        return failed

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
                       relay_wire.encode_request(self.relay_address, self._secret()),
                       (self.address,))
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
        self._secrets.put(self._secret_key, reply.secret)
        self.registrations += 1
        self.condition.up()
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
                    self.condition.down(str(exc) or type(exc).__name__)
                    log.warning("relay %s: registration at %s failed: %s (retry in %.1f s)",
                                self.relay_address, self.at_text, exc, backoff)
                    self.node.clock.wait(self._stopped, backoff * random.uniform(0.5, 1.0))
                    backoff = min(backoff * 2, self.REFUSED_BACKOFF_MAX if isinstance(exc, RelayRefused)
                                  else self.BACKOFF_MAX)
                    continue
            self._watch()

    def _watch(self) -> None:
        """Return when the registration is lost: connection closed or pings unanswered."""
        lost = Event()
        unwatch = watch_link(self.node, self.first_hop, lambda _link: lost.set()) if self.first_hop else None
        if self.first_hop is not None and self.first_hop not in self.node.workers:
            lost.set()  # closed before this greenlet first ran
        missed = 0
        ping_route = self.remote_route[:-1] + (Address.local("echo"),)
        reason = f"the link to {self.at_text} was lost"
        while not self._stopped.is_set() and not self.node.clock.wait(lost, self.PING_INTERVAL):
            sent = self.node.clock.now()
            try:  # a link lost while the ping waits ends the wait at once
                if self.node.request(ping_route, b"\x00", self.PING_TIMEOUT, cancel=lost) is None:
                    break
                self.ping_rtt = self.node.clock.now() - sent
                missed = 0
                continue
            except RequestTimeout:
                missed += 1
            if missed >= self.MAX_MISSED_PINGS:
                reason = f"{missed} pings to {self.at_text} unanswered"
                break
        if unwatch is not None:
            unwatch()
        self.remote_route = None
        self._drop_connection()
        if not self._stopped.is_set():
            self.reconnects += 1
            self.condition.connecting(reason)
            log.warning("relay %s: %s; registering again", self.relay_address, reason)

    def _secret(self) -> bytes:
        """This relay node's secret for the name; one kept before there could be several relay
        nodes (by the name alone) is only ever sent when there is one."""
        return self._secrets.get(self._secret_key) or (self._secrets.get(self.relay_address) if self._only_one else b"")

    @property
    def _secret_key(self) -> str:
        """Each relay node gives its own secret for the name: kept per relay node (`at`)."""
        return f"{self.relay_address} at {self.at_text}"

    def _drop_connection(self) -> None:
        for connection in self._owned:
            connection.close()
        self._owned = []
        self.first_hop = None

    def describe(self) -> dict:
        return {"name": self.relay_address, "at": self.at_text,
                "remote_route": route_text(self.remote_route) if self.remote_route else "(reconnecting)",
                "registrations": self.registrations, "reconnects": self.reconnects, "direction": "outgoing",
                **self.condition.describe()}


class Relays:
    """The registering side's relays on one node: one name may be registered at several relay
    nodes (failover, scale-out), each registration kept alive on its own. `clients` is by
    (relay address, route to the relay node)."""

    def __init__(self, node, secrets: SecretBook | None = None):
        self.node = node
        self.secrets = secrets or SecretBook()
        self.clients: dict[tuple, RelayClient] = {}

    def named(self, address: str) -> list:
        return [client for (name, _at), client in self.clients.items() if name == address]

    def create(self, name: str, ats: list, resolver, wait: bool = True) -> list:
        """A registration of `name` at each of `ats`; `resolver(at)` resolves the route to one.
        With `wait`, each registers once first: the ones that fail keep trying in the
        background, unless all failed (then the first error is raised and none is kept)."""
        relay_wire.validate_name(name)
        address = relay_wire.relay_address(name)
        if self.named(address):
            raise AddressInUse(f"this node already has a relay {address}")
        if len(set(ats)) != len(ats):
            raise BadArgument(f"relay {name}: the same --at twice")
        clients = [RelayClient(self.node, name, at, resolver(at), self.secrets, only_one=len(ats) == 1) for at in ats]
        for client in clients:
            self.clients[(address, client.at_text)] = client
        starts = [gevent.spawn(client.start, wait) for client in clients]  # at once: one slow relay delays none
        gevent.joinall(starts)
        errors = [start.value if start.successful() else start.exception for start in starts]
        if wait and all(errors):
            for client in clients:
                self.clients.pop((address, client.at_text), None)
                client.stop()
            raise errors[0]
        return clients

    def attach(self, name: str, at: str, resolve_at) -> RelayClient:
        """One more relay node for `name`, registered in the background (a topology's reload
        adds one without touching the others)."""
        relay_wire.validate_name(name)
        address = relay_wire.relay_address(name)
        if (address, at) in self.clients:
            raise AddressInUse(f"this node already has a relay {address} at {at}")
        client = RelayClient(self.node, name, at, resolve_at, self.secrets, only_one=not self.named(address))
        self.clients[(address, at)] = client
        client.start(wait=False)
        return client

    def detach(self, name: str, ats: list) -> None:
        """Stop the registrations of `name` at each of `ats` (NotFound if it has none there)."""
        address = relay_wire.relay_address(name)
        clients = [client for at in ats if (client := self.clients.pop((address, at), None)) is not None]
        if not clients:
            raise NotFound(f"no relay {name!r} at {' or '.join(ats)} on this node")
        for client in clients:
            client.stop()

    def delete(self, name: str) -> None:
        address = relay_wire.relay_address(name)
        clients = self.named(address)
        if not clients:
            raise NotFound(f"no relay {name!r} on this node")
        for client in clients:
            del self.clients[(address, client.at_text)]
            client.stop()
