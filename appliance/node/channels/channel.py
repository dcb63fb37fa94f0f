"""Secure channels on a node: Noise XX handshakes over any route, then encrypted routing.

A channel end is two workers. Its decryptor receives the handshake and then ciphertext
from the peer, and routes what it decrypts locally, tagged with the peer's identifier and
with the encryptor prepended to the return route (so replies go back through the channel).
Its encryptor, `/service/<hex>`, is what local senders put in their routes: whatever is
sent to `[encryptor, ...rest]` comes out at the peer with onward `rest`.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import gevent
from gevent.event import AsyncResult, Event

from appliance.limits.budgets import Limits
from appliance.node.errors import AddressInUse, NodeError, NotFound, RequestTimeout, RouteError
from appliance.node.message import LocalMessage
from appliance.node.channels.handshakes import HandshakeBudget
from appliance.node.transport.links import CloseNotifier, watch_link
from appliance.node.singleflight import SingleFlight
from appliance.node.sources import message_source
from appliance.node.worker import Worker
from appliance.secure.errors import DecryptError, HandshakeError, HandshakeRefused, ReplayError, SecureError
from appliance.secure.handshake import ChannelHandshake, HandshakeState
from appliance.secure.identity import Identity
from appliance.secure.suites import Suite, default_suite, suite_by_id
from appliance.wire import secure_channel as wire
from appliance.wire.address import Address
from appliance.wire.buffer import Buffer
from appliance.wire.errors import DecodeError

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0
PROBE_QUIET = 2.0  # a channel that heard from its peer this recently needs no probe
PROBE_TIMEOUT = 1.5
RETIRED_PROBE_TIMEOUT = 10.0  # a retired channel is closed when its peer stays silent this long
RETIRED_CHECK = 5.0


class ChannelRefused(NodeError):
    """The handshake failed: wrong identity, refused by the peer, or bad messages."""


class _Decryptor(Worker):
    def __init__(self, end: "ChannelEnd"):
        self.end = end
        self.address = Address.random_local()

    def handle(self, msg: LocalMessage) -> None:
        self.end.on_message(msg)


class _Encryptor(Worker):
    def __init__(self, end: "ChannelEnd"):
        self.end = end
        self.address = Address.random_local()

    def handle(self, msg: LocalMessage) -> None:
        self.end.send(msg)

    def on_close(self, callback):
        """The encryptor is the channel's address in routes: it is the link to watch."""
        return self.end.on_close(callback)

    @property
    def carried_by(self) -> Any:
        """The first hop of the channel's route: what a message out of it arrived over."""
        return self.end.remote_route[0] if self.end.remote_route else None

    @property
    def retired(self) -> bool:
        """Routes that start here should be resolved again (see ChannelEnd.check_alive)."""
        return self.end.retired

    @property
    def outgoing(self) -> bool:
        """We made this channel (as a TCP connection we dialled): for node/sources.py, the
        hop behind it in a return route was written by the peer we chose, not by a stranger."""
        return self.end.initiator


class ChannelEnd(CloseNotifier):
    """The runtime half of a channel end: its two workers, its route to the peer, and the
    handshake (secure/handshake.py) until it is established."""

    def __init__(self, channels: "SecureChannels", initiator: bool, suite: Suite, authorized, via: str):
        self.channels = channels
        self.node = channels.node
        self.initiator = initiator
        self.suite = suite
        self.authorized = authorized
        self.via = via
        self.handshake: Any = ChannelHandshake(suite, initiator, channels.static_private, self._prove, authorized)
        self.decryptor = _Decryptor(self)
        self.encryptor = _Encryptor(self)
        self.remote_route: tuple = ()
        self.peer: str | None = None
        self.established = AsyncResult()
        self.closed = False
        self._init_close_notifier()
        self._unwatch: Any = None  # stops watching the link this channel rides on
        self._enc: Any = None  # a ChannelEncryptor once established
        self._dec: Any = None
        self._routes_hint = 0  # the routes' length of the peer's last PAYLOAD (wire/transport.py decode_routed)
        self.heard_at = 0.0  # loop time of the last authenticated message from the peer
        self._probing = SingleFlight()
        self._probe_answered: Event | None = None
        self.retired = False  # its peer did not answer a probe: no new traffic is sent into it
        self._source: Any = None  # a responder's: what its handshake counts against (HandshakeBudget)
        self.proved: dict = {}  # project -> Unix time the newest credential of it the peer proved here lapses
        self._lapse: Any = None  # the loop timer that closes the channel then
        self.node.register(self.decryptor)

    # --- handshake --------------------------------------------------------------------------
    def _prove(self, static_public: Buffer) -> bytes:
        identity = self.channels.identity
        return wire.IdentityProof(identity.public_key, identity.attest_static_key(static_public),
                                  self.channels.trust.presentable()).encode()

    def start_initiator(self, route: tuple) -> None:
        """A link under the handshake that closes (a relay node killed as we dialled) fails
        it at once, so that the caller tries again now rather than after its timeout."""
        self._unwatch = watch_link(self.node, route[0], lambda _link: self.fail(
            RouteError(f"the link to {self.via} closed during the secure channel handshake"))) if route else None
        self.node.send(route, self.handshake.start(), (self.decryptor.address,))

    def start_responder(self, msg: LocalMessage, noise_message: Buffer) -> None:
        self.remote_route = msg.return_route
        self._source = message_source(self.node, msg.return_route)
        self.channels.handshakes.started(self._source, self)
        self._step(self.handshake.receive_init, noise_message)
        gevent.spawn_later(HANDSHAKE_TIMEOUT, self._expire)

    def on_message(self, msg: LocalMessage) -> None:
        if self.handshake is None:
            self._decrypt(msg)
            return
        if not self.remote_route and self.handshake.state is HandshakeState.AWAITING_RESPONSE:
            self.remote_route = msg.return_route  # the responder's end: our peer from now on
        self._step(self.handshake.receive, msg.payload)

    def _step(self, step, message: Buffer) -> None:
        handshake = self.handshake
        try:
            reply = step(message)
        except HandshakeError as exc:
            self.node.counters["handshakes_failed"] += 1
            log.warning("secure channel handshake via %s failed: %s", self.via, exc)
            if self.remote_route and not isinstance(exc, HandshakeRefused):
                self.node.send(self.remote_route, wire.encode_refusal(str(exc)), (self.decryptor.address,))
            self.fail(ChannelRefused(f"secure channel handshake failed: {exc}"))
            return
        if handshake.encryptor is not None and self._enc is None:
            # keys are split: a local peer answers inside the send below (delivery is synchronous)
            self._enc, self._dec = handshake.encryptor, handshake.decryptor
        if handshake.state is HandshakeState.ESTABLISHED:
            self._establish()
        if reply is not None:
            self.node.send(self.remote_route, reply, (self.decryptor.address,))

    def _expire(self) -> None:
        if not self.established.ready():
            self.node.counters["handshakes_timed_out"] += 1
            self.fail(RequestTimeout("secure channel handshake timed out"))

    def _handshake_over(self) -> None:
        if self._source is not None:
            self._source = None
            self.channels.handshakes.finished(self)

    def _establish(self) -> None:
        self._handshake_over()
        handshake, self.handshake = self.handshake, None
        self.peer = handshake.peer
        self._credentials_until(self.channels.trust.learn(self.peer, handshake.credentials))
        self.node.register(self.encryptor)
        self.channels.ends[self.encryptor.address.inner.decode()] = self
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        if self.remote_route:  # a TCP connection, or the encryptor of a channel we run inside
            self._unwatch = watch_link(self.node, self.remote_route[0], lambda _link: self.close(notify=False))
        self.established.set(self)
        self.node.counters["handshakes_ok"] += 1
        log.info("secure channel %s with %s established via %s", self.encryptor.address, self.peer, self.via)

    def fail(self, exc: Exception) -> None:
        if not self.established.ready():
            self.established.set_exception(exc)
        self.close(notify=False)

    # --- data -------------------------------------------------------------------------------
    def send(self, msg: LocalMessage) -> None:
        payload = msg.payload
        packet = self._enc.encrypt(payload, wire.payload_head(msg.onward[1:], msg.return_route, len(payload)))
        self.node.route(LocalMessage(self.remote_route, (self.decryptor.address,), packet, None, msg.answer,
                                     msg.origin_route or msg.return_route, msg.datagram))

    def _decrypt(self, msg: LocalMessage) -> None:
        try:
            kind, onward, return_route, payload, hint = wire.decode_channel_message(self._dec.decrypt(msg.payload),
                                                                                     self._routes_hint)
        except (DecryptError, ReplayError, DecodeError) as exc:
            self.node.counters["channel_messages_rejected"] += 1
            log.debug("secure channel %s dropped a message: %s", self.encryptor.address, exc)
            return
        self.heard_at = self.node.clock.now()
        if kind == wire.PAYLOAD:
            self._routes_hint = hint
            self.node.route(LocalMessage(onward, (self.encryptor.address,) + return_route, payload, self.peer))
        elif kind == wire.CLOSE:
            self.close(notify=False)
        elif kind == wire.PROBE:
            self._signal(wire.PROBE_ACK_MESSAGE)
        elif kind == wire.PROBE_ACK:
            if self._probe_answered is not None:
                self._probe_answered.set()
        elif kind == wire.CREDENTIAL:
            self._credentials_until(self.channels.trust.learn(self.peer, (payload,)))
        else:
            self.node.counters["channel_messages_rejected"] += 1

    # --- credentials ----------------------------------------------------------------------------
    def _credentials_until(self, proved: dict) -> None:
        """The peer proved, in this channel, credentials of these projects valid until these
        times. When one project's lapses (the peer did not present a fresh one), what that
        project allowed over this channel ends (`SecureChannels.on_lapse`: a relay box ends
        the peer's relays and closes the channel); when the last lapses, the channel closes (what rides
        on it was allowed by them: outlets with `allow`). A peer that never presented a
        credential is not held to any."""
        if not proved or self.closed:
            return
        for project, expires in proved.items():
            self.proved[project] = max(self.proved.get(project, 0.0), expires)
        self._arm_lapse()

    def _arm_lapse(self) -> None:
        if self._lapse is not None:
            self._lapse.stop()
        self._lapse = self.node.clock.later(min(self.proved.values()) - self.node.clock.wall(),
                                            self._credential_lapsed)

    def _credential_lapsed(self) -> None:
        now = self.node.clock.wall()  # the wall clock may have moved: what has not lapsed yet waits the rest
        lapsed = [project for project, expires in self.proved.items() if expires <= now]
        for project in lapsed:
            del self.proved[project]
            self.channels.lapsed(self, project)
        if self.closed:  # a listener closed it (a relay box, its project's credential lapsed)
            return
        if self.proved:
            self._arm_lapse()
            return
        self.node.counters["channels_credential_lapsed"] += 1
        log.warning("secure channel %s with %s: the peer's credential expired; closing it",
                    self.encryptor.address, self.peer)
        gevent.spawn(self.close, True)

    def proved_until(self, project: str) -> float:
        """When the credential of `project` the peer proved in this channel lapses (0: none)."""
        return self.proved.get(project, 0.0)

    def present(self, credential: Buffer) -> None:
        """Give the peer our fresh credential, so it keeps the channel past the old one's expiry."""
        if self._enc is not None and not self.closed:
            self._signal(wire.encode_credential(credential))

    def _signal(self, message: Buffer) -> None:
        """An encrypted channel message (Close, Probe, ProbeAck, Credential) to the peer."""
        self.node.route(LocalMessage(self.remote_route, (self.decryptor.address,), self._enc.encrypt(message)))

    # --- liveness -----------------------------------------------------------------------------
    def check_alive(self) -> bool:
        """May new traffic use this channel? Yes if its peer was heard from lately; else ask
        it (one probe for all who ask at once). Without an answer the channel is retired:
        new connections get a new channel at once, while what already rides on this one
        keeps it until that is gone or a patient probe proves the far end dead. A path that
        only stalled for a moment thus costs no established connection."""
        if self.closed or self._enc is None or self.retired:
            return False
        if self.node.clock.now() - self.heard_at < PROBE_QUIET:
            return True
        return self._probing.run(None, self._probe)

    def _probe(self) -> bool:
        if self._ask(PROBE_TIMEOUT):
            return True
        self.retired = True
        self.node.counters["channels_retired"] += 1
        log.warning("secure channel %s via %s: no answer to a probe within %g s; new connections "
                    "will use a new channel", self.encryptor.address, self.via, PROBE_TIMEOUT)
        gevent.spawn(self._retire)
        return False

    def _retire(self) -> None:
        while not self.closed:
            if not self._close_callbacks:  # nothing rides on it any more
                self.close(notify=True)
                return
            if not self._ask(RETIRED_PROBE_TIMEOUT) and not self.closed:
                self.node.counters["channels_dead"] += 1
                log.warning("secure channel %s via %s: its far end is gone, closing it", self.encryptor.address,
                            self.via)
                self.close(notify=True)
                return
            self.node.clock.sleep(RETIRED_CHECK)

    def _ask(self, timeout: float) -> bool:
        """Send a probe; True when the peer answers within `timeout`."""
        answered = self._probe_answered = Event()
        self._signal(wire.PROBE_MESSAGE)
        return self.node.clock.wait(answered, timeout)

    def close(self, notify: bool = True) -> None:
        if self.closed:
            return
        self.closed = True
        self._handshake_over()
        if notify and self._enc is not None:
            try:
                self._signal(wire.CLOSE_MESSAGE)
            except SecureError:
                pass
        if self._probe_answered is not None:
            self._probe_answered.set()  # a probe waiting on a closed channel ends now
        if self._lapse is not None:
            self._lapse.stop()
        self.node.unregister(self.decryptor.address)
        self.node.unregister(self.encryptor.address)
        self.channels.ends.pop(self.encryptor.address.inner.decode(), None)
        if self._unwatch is not None:
            self._unwatch()
        self._notify_closed()  # channels and relays riding on this one go too

    def describe(self) -> dict:
        return {"address": f"/service/{self.encryptor.address.inner.decode()}", "peer": self.peer,
                "role": "initiator" if self.initiator else "responder", "route": self.via,
                "suite": self.suite.protocol_name.decode()}


class SecureChannelListener(Worker):
    """`/service/<name>` (every node has `api`): answers handshakes, optionally only from
    some identifiers."""

    def __init__(self, channels: "SecureChannels", name: str, authorized):
        self.channels = channels
        self.name = name
        self.address = Address.local(name)
        self.authorized = authorized

    def handle(self, msg: LocalMessage) -> None:
        node = self.channels.node
        try:
            suite_id, noise_message = wire.decode_init(msg.payload)
            suite = suite_by_id(suite_id)
        except (DecodeError, SecureError) as exc:
            node.counters["handshakes_failed"] += 1
            node.answer(msg, wire.encode_refusal(str(exc)), self.address)
            return
        busy = self.channels.handshakes.refusal(message_source(node, msg.return_route))
        if busy:
            node.answer(msg, wire.encode_refusal(busy), self.address)
            return
        ChannelEnd(self.channels, False, suite, self.authorized, f"listener {self.name}").start_responder(
            msg, noise_message)

    def describe(self) -> dict:
        return {"address": f"/service/{self.name}", "authorized": sorted(self.authorized or ())}


class SecureChannels:
    """A node's identity, its Noise static key, its listeners and its channel ends."""

    def __init__(self, node, identity: Identity, trust, limits: Limits = Limits()):
        """`trust`: what the node believes of projects and peers (project/trust.py)."""
        self.node = node
        self.handshakes = HandshakeBudget(limits, node.counters, node.clock.now)
        self.identity = identity
        self.trust = trust
        self.static_private = os.urandom(32)  # attested by the identity in every handshake
        self.listeners: dict[str, SecureChannelListener] = {}
        self.ends: dict[str, ChannelEnd] = {}  # by encryptor address
        self._creating = SingleFlight()
        self._lapse_listeners: list = []

    def listen(self, name: str = "api", authorized=None) -> SecureChannelListener:
        if name in self.listeners or Address.local(name) in self.node.workers:
            raise AddressInUse(f"address {name} is already in use")
        listener = SecureChannelListener(self, name, frozenset(authorized) if authorized else None)
        self.node.register(listener)
        self.listeners[name] = listener
        return listener

    def stop_listener(self, name: str) -> None:
        listener = self.listeners.pop(name, None)
        if listener is None:
            raise NotFound(f"no secure channel listener {name!r}")
        self.node.unregister(listener.address)

    def create(self, route: tuple, via: str, authorized=None, suite: Suite | None = None,
               timeout: float = HANDSHAKE_TIMEOUT) -> ChannelEnd:
        """Run a handshake to the listener at the end of `route`; block until it is done."""
        first = self.node.workers.get(route[0]) if route else None
        if getattr(first, "connected", True) is False:  # a persistent TCP connection, dialling again
            raise RouteError(f"cannot make a secure channel via {via}: its TCP connection is reconnecting")
        end = ChannelEnd(self, True, suite or default_suite(), frozenset(authorized) if authorized else None, via)
        end.start_initiator(route)
        try:
            return end.established.get(timeout=timeout)
        except gevent.Timeout:
            end.fail(RequestTimeout(f"no secure channel handshake answer from {via} within {timeout:g} s"))
            raise RequestTimeout(f"no secure channel handshake answer from {via} within {timeout:g} s") from None

    def channel_to(self, route: tuple, via: str, authorized=None, timeout: float = HANDSHAKE_TIMEOUT) -> ChannelEnd:
        """An established channel over exactly this route (and trust), reused when one exists."""
        wanted = frozenset(authorized) if authorized else None
        for end in self.ends.values():
            if end.initiator and not end.closed and not end.retired and end.via == via and end.authorized == wanted:
                return end
        return self._creating.run((via, wanted), lambda: self.create(route, via, authorized, timeout=timeout))

    def on_lapse(self, callback) -> None:
        """`callback(end, project)` when the credential of `project` a peer proved in channel
        `end` lapses (the channel may live on, on another project's)."""
        self._lapse_listeners.append(callback)

    def lapsed(self, end: ChannelEnd, project: str) -> None:
        for callback in self._lapse_listeners:
            callback(end, project)

    def first_hop(self, route: tuple) -> ChannelEnd | None:
        """Our channel end that `route` starts with, if it starts with one."""
        return self.ends.get(route[0].inner.decode(errors="replace")) if route else None

    def path_broken(self, route: tuple) -> None:
        """A node on the way said a route that starts with one of our channels is broken:
        the channel's far end cannot be reached any more."""
        end = self.first_hop(route)
        if end is not None:
            end.close(notify=False)

    def check_first_hop(self, route: tuple) -> None:
        """A message over `route` went unanswered: if it starts with a channel of ours,
        find out whether its far end is still there (retiring the channel if not)."""
        end = self.first_hop(route)
        if end is not None and end.initiator:
            end.check_alive()

    def present(self, credential: Buffer) -> None:
        """A fresh credential of ours, to every peer we have a channel with."""
        for end in list(self.ends.values()):
            end.present(credential)

    def find(self, address: str) -> ChannelEnd:
        end = self.ends.get(address.removeprefix("/service/").removeprefix("0#"))
        if end is None:
            raise NotFound(f"no secure channel {address!r}")
        return end

    def close(self) -> None:
        for end in list(self.ends.values()):
            end.close(notify=True)


