"""Links and what rides on them: a peer cannot make a node dial out; a channel inside a
channel, a relay registered over a channel and close watches all go with their link;
refused relay retries leak no connection; a frame split anyhow decodes. (Each of these
failed once, when a review found it.)"""

import struct

import pytest

from appliance.node.relays.relay import RelayClient, RelayRefused
from appliance.wire.address import TCP, Address
from appliance.wire.framing import FrameDecoder, encode_frame_header
from appliance.wire.transport import TransportMessage
from tests.helpers import free_port, wait_until
from tests.node.conftest import connect
from appliance.wire.framing import PROTOCOL_VERSION_BYTE as VERSION


def test_a_peer_cannot_make_a_node_dial_out(make_node):
    """A `1#host:port` hop in a received message is dropped, never connected to."""
    victim = make_node("victim")
    target_port = free_port()
    body = TransportMessage((Address(TCP, f"127.0.0.1:{target_port}".encode()), Address.local("x")),
                           (), b"attacker bytes").encode()
    sock = connect(make_node.listener("victim"))
    sock.sendall(VERSION + (encode_frame_header(len(body)) + body) * 50)
    wait_until(lambda: victim.node.counters["dropped_unknown_address"] == 50, what="the frames to be dropped")
    assert not any(c.outgoing for c in victim.tcp.connections.values())


def test_a_channel_inside_a_channel_closes_with_the_connection(make_node):
    a, _ = make_node("a"), make_node("b")
    a.control.message_send("/node/b/secure/api/secure/api/service/echo", "x")
    assert len(a.channels.ends) == 2
    for conn in list(a.tcp.connections.values()):
        conn.close()
    assert a.channels.ends == {}
    assert a.control.message_send("/node/b/secure/api/secure/api/service/echo", "again")["reply"] == "again"


def test_a_relay_registered_over_a_channel_goes_with_the_channel(make_node):
    relay_node, private = make_node("n2"), make_node("n3")
    private.control.relay_create("n3", "/node/n2/secure/api")
    assert "forward_to_n3" in relay_node.forwarding.relays
    for end in list(relay_node.channels.ends.values()):
        end.close(notify=False)
    assert relay_node.forwarding.relays == {}


def test_close_watches_do_not_pile_up_on_a_long_lived_connection(make_node):
    a, b = make_node("a"), make_node("b")
    for _ in range(20):
        end = a.control.secure_channel_create("/node/b/service/api")
        a.control.secure_channel_delete(end["address"])
    wait_until(lambda: not b.channels.ends, what="b's channel ends to close")
    for runtime in (a, b):
        for conn in runtime.tcp.connections.values():
            assert len(conn._close_callbacks) <= 1


def test_refused_relay_retries_do_not_leak_connections(make_node, monkeypatch):
    monkeypatch.setattr(RelayClient, "BACKOFF_START", 0.02)
    monkeypatch.setattr(RelayClient, "BACKOFF_MAX", 0.05)
    make_node("n2")
    holder, latecomer = make_node("holder"), make_node("late")
    holder.control.relay_create("name", "/node/n2")
    with pytest.raises(RelayRefused):
        latecomer.control.relay_create("name", "/node/n2")
    client = RelayClient(latecomer.node, "other", "/node/n2", lambda: latecomer.resolver.resolve("/node/n2", reuse=False))
    holder.control.relay_create("other", "/node/n2")
    client.start(wait=False)  # keeps being refused, retrying in the background
    import gevent

    gevent.sleep(0.5)
    client.stop()
    assert len(latecomer.tcp.connections) <= 1


def test_a_split_header_then_a_trickled_body_decodes_without_regrouping_everything():
    decoder = FrameDecoder(max_frame=1 << 20)
    body = bytes(range(256)) * 40
    stream = VERSION + struct.pack(">I", len(body)) + body
    frames = []
    frames += decoder.feed(stream[:3])  # version byte + 2 header bytes
    for i in range(3, len(stream), 7):
        frames += decoder.feed(stream[i:i + 7])
        assert len(decoder._pending) <= (len(stream) - 3) // 7 + 2
    assert [bytes(f) for f in frames] == [body]
