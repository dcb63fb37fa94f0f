"""Issue 11, row 7: 5000 fuzzed frames registered 5 relays on the edge node through
forward_to_n3/forwarding_service, and the edge leaked 4 file descriptors.

A structured fuzzer (hypothesis): well-framed frames whose bodies are transport messages
with hostile routes (0 to 70 hops, addresses such as forward_to_n3, forwarding_service, echo,
api, outlet or random bytes, transport types 0, 1 and 255) and payloads (random bytes, relay
registrations, portal messages, secure channel handshake messages), now and then a body
that is no transport message at all. They go to the live relay while a download runs.

Afterwards: every node is alive, the relay link was never lost and the download
arrived whole, the edge has no relay registered on it (its forwarding_service refuses: not a
relay), and the edge's and the relay's open file descriptors come back to what they were.

`frames()` and `fuzz()` are also what bench/hostile.py sends (5000 frames).
"""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from appliance.wire import bare
from appliance.wire import portal as portal_wire
from appliance.wire import secure_channel as sc_wire
from appliance.wire.address import Address
from appliance.wire.transport import TransportMessage
from tests.helpers import wait_until
from tests.hostile.attacker import ATTACKER, Peer, close_all, hops
from tests.hostile.conftest import Transfer, transfer_ok

pytestmark = pytest.mark.timeout(90)

NAMES = [b"forward_to_n3", b"forwarding_service", b"echo", b"hop", b"uppercase", b"api", b"outlet", b"attacker"]
FWD, FS, ECHO, HOP, API, OUTLET = (Address.local(n) for n in
                                   ("forward_to_n3", "forwarding_service", "echo", "hop", "api", "outlet"))
PORTAL_PONG_TIMEOUT = 10.0  # an outlet stream nobody acknowledges is closed after this (node/portals/portal.py)

# --- strategies ------------------------------------------------------------------------------------

addresses = st.builds(Address, st.sampled_from([0, 0, 0, 1, 255]),
                      st.one_of(st.sampled_from(NAMES), st.binary(max_size=48), st.just(b"127.0.0.1:1")))
random_routes = st.lists(addresses, max_size=70).map(tuple)
long_routes = st.integers(60, 70).map(hops)  # around the 64-hop limit
short_routes = st.one_of(st.just((ATTACKER,)), st.lists(addresses, min_size=1, max_size=4).map(tuple))
onward_routes = st.one_of(
    st.sampled_from([(FWD, FS), (FWD, OUTLET), (FWD, ECHO), (FWD, API), (FWD, HOP, FS), (FS,), (ECHO,), (API,),
                     (HOP, FWD, FS)]),
    random_routes, long_routes.map(lambda r: (FWD, ECHO) + r[2:]))
return_routes = st.one_of(st.just((ATTACKER,)), random_routes, long_routes)

relay_names = st.one_of(st.sampled_from(["n3", "evil", "forward_to_n3", ""]),
                        st.text(string.ascii_letters + string.digits + "-_.", min_size=1, max_size=20),
                        st.text(max_size=20))
secrets = st.one_of(st.none(), st.none(), st.binary(min_size=16, max_size=16), st.binary(max_size=20))
registrations = st.builds(
    lambda name, secret: bare.encode_string(name if name.startswith("forward_to_") else "forward_to_" + name)
    + (bare.encode_bytes(secret) if secret is not None else b""),
    relay_names, secrets)
portal_messages = st.one_of(
    st.sampled_from([portal_wire.PING, portal_wire.PONG, portal_wire.DISCONNECT, portal_wire.END]),
    st.binary(max_size=300).map(portal_wire.encode_payload),
    st.integers(0, 1 << 40).map(lambda n: b"\x04" + bare.encode_uint(n)),
    st.binary(min_size=1, max_size=16).map(lambda b: bytes((b[0] % 8,)) + b[1:]))
handshakes = st.one_of(
    st.builds(sc_wire.encode_init, st.sampled_from([0, 1, 7]), st.binary(min_size=0, max_size=96)),
    st.builds(lambda kind, body: bytes((kind,)) + body, st.sampled_from([2, 3, 4]), st.binary(max_size=96)))
payloads = st.one_of(st.binary(max_size=512), registrations, portal_messages, handshakes)


def _message(onward, return_route, payload) -> bytes:
    return TransportMessage(tuple(onward), tuple(return_route), payload).encode()


# each service with what it understands (and misunderstands)
targeted = st.one_of(
    st.builds(_message, st.sampled_from([(FWD, FS), (FWD, HOP, FS), (FS,)]), short_routes, registrations),
    st.builds(_message, st.sampled_from([(FWD, OUTLET), (FWD, HOP, OUTLET)]), short_routes, portal_messages),
    st.builds(_message, st.sampled_from([(API,), (FWD, API)]), short_routes, handshakes),
    st.builds(_message, st.sampled_from([(FWD, ECHO), (ECHO,), (FWD, HOP, ECHO)]), long_routes, payloads))
anything = st.builds(_message, onward_routes, return_routes, payloads)


def frames():
    """Frame bodies: targeted and random transport messages, now and then any bytes."""
    return st.one_of(targeted, targeted, anything, st.binary(max_size=64))


class Fuzzer:
    """Sends bodies as frames to the relay on one connection at a time; a connection the
    relay closed (bad input may do that) is replaced by a new one. `peers` are all it opened."""

    def __init__(self, port: int, source: str = "127.0.0.5"):
        self.port, self.source = port, source
        self.peers: list[Peer] = []
        self.sent = 0
        self.reconnects = 0

    def send(self, body: bytes) -> None:
        for _ in range(2):  # a connection found closed: once more on a new one
            if not self.peers or self.peers[-1].eof.is_set():
                if self.peers:
                    self.reconnects += 1
                self.peers.append(Peer(self.port, self.source).start_reader())
            if self.peers[-1].send_frame(body):
                self.sent += 1
                return

    def close(self) -> None:
        close_all(self.peers)


def fuzz(port: int, count: int, source: str = "127.0.0.5", derandomize: bool = True) -> Fuzzer:
    """Send `count` generated frames to the node listening on `port`."""
    fuzzer = Fuzzer(port, source)

    @settings(max_examples=count, deadline=None, database=None, derandomize=derandomize, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(frames())
    def send(body):
        fuzzer.send(body)

    try:
        send()
    except BaseException:
        fuzzer.close()
        raise
    return fuzzer


def test_fuzzed_frames_leave_every_node_as_it_was(hostile):
    net = hostile()
    fds_before = {"edge": net.fds("edge"), "relay": net.fds("relay")}
    with Transfer(net.inlet, n=8 << 20) as transfer:
        fuzzer = fuzz(net.relay_port, 200)
    fuzzer.close()
    facts = {
        "alive": {n: net.alive(n) for n in ("relay", "edge", "client")},
        "download": transfer_ok(transfer),
        "relays registered on the edge": [r["name"] for r in net.incoming_relays("edge")],
        "edge registrations": net.registrations(),  # 1: the relay link was never lost
        "fds back": {n: fds_back(net, n, fds_before[n]) for n in ("edge", "relay")},
    }
    assert facts == {"alive": {"relay": True, "edge": True, "client": True}, "download": True,
                     "relays registered on the edge": [], "edge registrations": 1,
                     "fds back": {"edge": True, "relay": True}}, \
        (transfer.error, f"{fuzzer.sent} frames, {fuzzer.reconnects} reconnects")


def fds_back(net, name: str, before: int):
    """True once the node's open fds are back to `before` (outlet streams nobody acknowledged
    close after the Pong timeout); else what they are."""
    try:
        wait_until(lambda: net.fds(name) <= before, timeout=PORTAL_PONG_TIMEOUT + 5.0, interval=0.25)
        return True
    except AssertionError:
        return f"{net.fds(name)} open, {before} before"
