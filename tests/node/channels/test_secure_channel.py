"""Secure channels between in-process nodes: routing through them, trust, hostile input."""

import os

import pytest

from appliance.node.channels import channel as channel_mod
from appliance.node.portals import routecheck
from appliance.node.channels.channel import ChannelRefused
from appliance.node.errors import BadArgument, RequestTimeout, RouteError
from appliance.node.message import LocalMessage
from appliance.node.transport.tcp import TcpConnection
from appliance.node.worker import Worker
from appliance.secure.suites import CHACHAPOLY
from appliance.wire import portal as portal_wire
from appliance.wire import secure_channel as wire
from appliance.wire.address import Address
from tests.helpers import port_of, wait_until
from tests.node.conftest import connect, recv_exactly


@pytest.fixture
def relay_setup(make_node):
    relay, private, client = make_node("n2"), make_node("n3"), make_node("n1")
    private.control.relay_create("n3", "/node/n2")
    return relay, private, client


def test_channel_create_then_route_through_it(make_node):
    a, b = make_node("a"), make_node("b")
    end = a.control.secure_channel_create("/node/b/service/api")
    assert end["peer"] == b.identifier
    assert a.control.message_send(f"{end['address']}/service/uppercase", "secret")["reply"] == "SECRET"
    (responder,) = b.control.secure_channel_list()
    assert responder["peer"] == a.identifier and responder["role"] == "responder"


def test_secure_segment_inside_a_route_through_a_relay(relay_setup):
    _, _, client = relay_setup
    reply = client.control.message_send("/node/n2/service/forward_to_n3/secure/api/service/uppercase", "hello")
    assert reply["reply"] == "HELLO"
    assert len(client.control.secure_channel_list()) == 1
    client.control.message_send("/node/n2/service/forward_to_n3/secure/api/service/echo", "again")
    assert len(client.control.secure_channel_list()) == 1, "the channel is reused for the same route"


@pytest.mark.pure_only("TcpConnection.handle")
def test_the_relay_node_only_sees_ciphertext(relay_setup, monkeypatch):
    relay, _, client = relay_setup
    seen = []
    original = TcpConnection.handle

    def record(self, msg):
        if self.node is relay.node:
            seen.append(msg.payload)
        return original(self, msg)

    monkeypatch.setattr(TcpConnection, "handle", record)
    marker = "MARKER-" + os.urandom(8).hex()
    assert client.control.message_send("/node/n2/service/forward_to_n3/secure/api/service/echo", marker)["reply"] == marker
    assert seen and not any(marker.encode() in p or marker.upper().encode() in p for p in seen)


def test_portal_over_a_secure_channel(relay_setup, echo_server):
    _, private, client = relay_setup
    private.control.outlet_create(echo_server, authorized=[client.identifier])
    inlet = client.control.inlet_create("127.0.0.1:0", "/node/n2/service/forward_to_n3/secure/api/service/outlet",
                                authorized=[private.identifier])
    sock = connect(inlet["bind_address"])
    data = os.urandom(1 << 20)
    sock.sendall(data)
    assert recv_exactly(sock, len(data)) == data
    sock.close()


def test_outlet_refuses_unauthorized_and_unauthenticated_peers(relay_setup, echo_server, make_node):
    _, private, client = relay_setup
    private.control.outlet_create(echo_server, authorized=["I" + "0" * 40])
    for route in ("/node/n2/service/forward_to_n3/secure/api/service/outlet",
                  "/node/n2/service/forward_to_n3/service/outlet"):
        inlet = client.control.inlet_create("127.0.0.1:0", route)  # the outlet is not there for it: refused at once
        assert (inlet["state"], inlet["last_error"]) == ("down", routecheck.ENDS_EARLY)
        with pytest.raises(ConnectionResetError):
            connect(inlet["bind_address"]).recv(10)
    assert private.node.counters["outlet_probes_refused"] == 2 and not private.portals.outlets["outlet"].streams
    # an inlet that asks anyway (its check not yet done) gets a Disconnect: an empty reply
    ping = client.node.request(client.resolver.resolve("/node/n2/service/forward_to_n3/service/outlet").route,
                               portal_wire.PING, 5)
    assert ping.payload == portal_wire.DISCONNECT and private.node.counters["unauthorized"] == 1


def test_wrong_identity_is_refused_by_either_side(make_node):
    a, b = make_node("a"), make_node("b")
    stranger = "I" + "1" * 40
    with pytest.raises(ChannelRefused, match="not authorized"):
        a.control.secure_channel_create("/node/b/service/api", authorized=[stranger])
    b.control.secure_channel_listener_create("strict", authorized=[stranger])
    with pytest.raises(ChannelRefused, match="refused by the peer"):
        a.control.secure_channel_create("/node/b/service/strict")
    ok = a.control.secure_channel_create("/node/b/service/api", authorized=[b.identifier])
    assert ok["peer"] == b.identifier
    with pytest.raises(BadArgument, match="not an identifier"):
        a.control.secure_channel_create("/node/b/service/api", authorized=["bob"])


@pytest.mark.pure_only("ChannelEnd._decrypt")
def test_tampered_and_replayed_ciphertext_is_dropped_and_counted(make_node, monkeypatch):
    a, b = make_node("a"), make_node("b")
    end = a.control.secure_channel_create("/node/b/service/api")
    captured = []
    original = channel_mod.ChannelEnd._decrypt

    def capture(self, msg):
        captured.append(msg)
        return original(self, msg)

    monkeypatch.setattr(channel_mod.ChannelEnd, "_decrypt", capture)
    assert a.control.message_send(f"{end['address']}/service/echo", "legit")["reply"] == "legit"
    packet = next(m for m in captured if m.onward and b.node.workers.get(m.onward[0]))
    b.node.route(packet)  # replay
    tampered = bytearray(packet.payload)
    tampered[12] ^= 0x40
    b.node.route(LocalMessage(packet.onward, packet.return_route, bytes(tampered)))
    b.node.route(LocalMessage(packet.onward, packet.return_route, packet.payload[:10]))  # truncated
    assert b.node.counters["channel_messages_rejected"] == 3
    assert a.control.message_send(f"{end['address']}/service/echo", "still fine")["reply"] == "still fine"


def test_chachapoly_suite(make_node):
    a, _ = make_node("a"), make_node("b")
    end = a.channels.create(a.resolver.resolve("/node/b").route + (Address.local("api"),), "test", suite=CHACHAPOLY)
    assert end.suite is CHACHAPOLY
    assert a.control.message_send(f"/service/{end.encryptor.address.inner.decode()}/service/echo", "cc")["reply"] == "cc"


def test_a_stalled_handshake_times_out(make_node):
    a = make_node("a")
    with pytest.raises(RequestTimeout, match="handshake"):
        a.channels.create((Address.local("nothing"),), "nowhere", timeout=0.3)
    assert not a.channels.ends and len(a.node.workers) == len(make_node("fresh").node.workers)


def test_garbage_at_every_handshake_step_leaves_the_node_serving(make_node, monkeypatch):
    monkeypatch.setattr(channel_mod, "HANDSHAKE_TIMEOUT", 0.3)
    a, b = make_node("a"), make_node("b")
    api = a.resolver.resolve("/node/b/service/api").route
    me = (Address.local("nobody"),)
    for garbage in (b"", b"\x01", b"\x01\x01\x09" + os.urandom(32), b"\x01\x02\x00" + os.urandom(32),
                    b"\x01\x01\x00" + os.urandom(10), os.urandom(200)):
        a.node.send(api, garbage, me)
    # a real first message, then garbage as the third message
    from appliance.secure.noise import XXHandshake
    from appliance.secure.suites import default_suite

    hs = XXHandshake(default_suite(), True, os.urandom(32))
    replies = []

    class Catcher(Worker):
        def __init__(self):
            self.address = Address.local("catcher")

        def handle(self, msg):
            replies.append(msg)

    catcher = Catcher()
    a.node.register(catcher)
    a.node.send(api, wire.encode_init(default_suite().id, hs.write_message()), (catcher.address,))
    wait_until(lambda: replies, what="message 2")
    a.node.send(replies[0].return_route, wire.encode_step(wire.FINISH, os.urandom(64)), (catcher.address,))
    wait_until(lambda: b.node.counters["handshakes_failed"] >= 5, what="b to reject the garbage")
    wait_until(lambda: not b.channels.ends, what="half-open handshakes to be dropped")
    assert a.control.secure_channel_create("/node/b/service/api")["peer"] == b.identifier


def test_unknown_suite_is_refused_with_a_reason(make_node):
    a, _ = make_node("a"), make_node("b")
    reply = a.node.request(a.resolver.resolve("/node/b/service/api").route, b"\x01\x01\x07" + os.urandom(32), timeout=5)
    kind, reason = wire.decode_step(reply.payload)
    assert kind == wire.REFUSE and "unknown cipher suite 7" in reason


def test_closing_one_end_closes_the_other(make_node):
    a, b = make_node("a"), make_node("b")
    end = a.control.secure_channel_create("/node/b/service/api")
    assert len(b.control.secure_channel_list()) == 1
    a.control.secure_channel_delete(end["address"])
    wait_until(lambda: not b.control.secure_channel_list(), what="the responder to close")


def test_messages_out_of_a_channel_carry_the_peer_identifier(make_node):
    a, b = make_node("a"), make_node("b")
    seen = []

    class Who(Worker):
        def __init__(self):
            self.address = Address.local("who")

        def handle(self, msg: LocalMessage):
            seen.append(msg.peer)
            b.node.send(msg.return_route, msg.payload)

    b.node.register(Who())
    end = a.control.secure_channel_create("/node/b/service/api")
    a.control.message_send(f"{end['address']}/service/who", "x")
    a.control.message_send("/node/b/service/who", "y")
    assert seen == [a.identifier, None]


def test_a_handshake_fails_at_once_when_its_link_closes(make_node, tcp_service):
    """A relay node killed as it accepted: the connection closes under the handshake, which
    fails then (before: it waited out its whole timeout, delaying the relay's next try)."""
    def accept_then_die(sock, _addr):
        sock.recv(1024)  # the transport's first bytes: then gone
        sock.close()

    service = tcp_service(accept_then_die)
    a = make_node("a")
    workers = set(a.node.workers)
    with pytest.raises(RouteError, match=r"the link to /ip4/127.0.0.1/tcp/\d+/secure/api closed during "
                                         "the secure channel handshake"):
        a.resolver.resolve(f"/ip4/127.0.0.1/tcp/{port_of(service)}/secure/api", reuse=False, handshake_timeout=60)
    assert set(a.node.workers) == workers  # the channel's decryptor, and the TCP connection, are gone
