"""No message a peer can send closes a link that carries others' traffic: a message that
cannot be decoded, or that would grow past the hop or frame limit at the next node, is
dropped where the limit would be exceeded, and counted; the link stays up."""

import pytest

from appliance.node.relays.relay import RelayClient
from appliance.wire.address import MAX_ROUTE_HOPS, Address
from appliance.wire.transport import TransportMessage
from tests.helpers import wait_until
from tests.node.conftest import RawPeer


@pytest.fixture(autouse=True)
def fast_relay_timers(monkeypatch):
    monkeypatch.setattr(RelayClient, "PING_INTERVAL", 0.2)


def hops(n: int) -> tuple:
    return tuple(Address.local(f"h{i}") for i in range(n))


def relay_setup(make_node):
    relay, edge = make_node("relay"), make_node("edge")
    edge.control.relay_create("n3", "/node/relay")
    client = edge.relays.named("forward_to_n3")[0]
    return relay, edge, client


def test_an_undecodable_message_is_dropped_and_the_link_stays(make_node):
    relay = make_node("relay")
    peer = RawPeer(make_node.listener("relay"))
    peer.send_body(b"\x01\x05garbage")  # framed well; not a transport message
    peer.send_body(b"\x07")  # an unknown transport message version
    assert peer.echo(b"still here") == b"still here"
    assert relay.node.counters["dropped_bad_messages"] == 2


def test_a_64_hop_return_route_through_a_relay_is_dropped_at_the_relay(make_node):
    relay, edge, client = relay_setup(make_node)
    links_before = set(edge.tcp.connections)
    peer = RawPeer(make_node.listener("relay"))
    for _ in range(20):  # the relay would have to add its own hop: 65 is over the limit
        peer.send((Address.local("forward_to_n3"), Address.local("echo")), hops(MAX_ROUTE_HOPS), b"x")
    assert peer.echo(b"after") == b"after"  # the attacker's own link is fine too
    assert relay.node.counters["dropped_route_too_long"] == 20
    assert set(edge.tcp.connections) == links_before and client.registrations == 1
    assert edge.node.counters["bad_frames"] == 0


def test_63_hops_still_pass(make_node):
    relay, edge, _client = relay_setup(make_node)
    peer = RawPeer(make_node.listener("relay"))
    peer.send((Address.local("forward_to_n3"), Address.local("echo")), hops(MAX_ROUTE_HOPS - 2), b"ok")
    reply = peer.receive()  # back through the relay: the edge added its hop, the relay its own
    assert reply.payload == b"ok" and len(reply.onward) == MAX_ROUTE_HOPS - 2
    assert relay.node.counters["dropped_route_too_long"] == 0


def test_a_message_that_would_overflow_the_next_frame_is_dropped_by_the_sender(make_node):
    relay, edge, client = relay_setup(make_node)
    links_before = set(edge.tcp.connections)
    peer = RawPeer(make_node.listener("relay"))
    route = (Address.local("forward_to_n3"), Address.local("echo"))
    overhead = len(TransportMessage(route, (Address.local("me"),), b"").encode()) + 4
    peer.send(route, (Address.local("me"),), b"\x00" * (relay.tcp.max_frame - overhead))  # fits here...
    assert peer.echo(b"after") == b"after"
    wait_until(lambda: relay.node.counters["dropped_too_large"] == 1, what="the relay to drop it")  # ...not there
    assert set(edge.tcp.connections) == links_before and client.registrations == 1
    assert edge.node.counters["bad_frames"] == 0


def test_long_routes_are_routed_but_not_kept_in_the_route_caches(make_node):
    """The codec keeps pairs of routes it has seen, to decode and encode a stream's messages
    by one lookup: a stranger's 62 hops of 1000-byte addresses are answered, never kept (4096
    of them would be a gigabyte)."""
    from appliance.wire import transport

    make_node("n")
    peer = RawPeer(make_node.listener("n"))
    for i in range(3):
        long_route = tuple(Address.local(bytes((i,)) * 1000) for _ in range(62))
        peer.send((Address.local("echo"),), long_route, b"x")
        reply = peer.receive()
        assert (reply.onward, reply.payload) == (long_route, b"x")
    assert not [key for key in transport._HEADS_IN if len(key) > 60_000]
    assert not [head for head in transport._HEADS_OUT.values() if len(head) > 60_000]
