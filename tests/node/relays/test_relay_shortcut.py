"""A relay passes a stream's messages on by the shortcut its first one taught it
(node/shortcuts.py): the same bytes as the long way, a new registration followed at once,
a bad payload behind known routes still dropped and counted."""

from appliance.wire.address import Address
from appliance.wire.transport import decode_body, encode_frame, routes_head
from tests.node.conftest import RawPeer

NAME, SERVICE, ME = Address.local("forward_to_b"), Address.local("service"), Address.local("me")
PAYLOADS = (b"x", b"y" * 200, b"z" * 300_000)  # lengths of one, two and three bytes


def registered(make_node):
    """The relay node, its listener, the peer registered as b, and a peer that sends to b."""
    relay = make_node("relay")
    hostport = make_node.listener("relay")
    b = RawPeer(hostport)
    assert b.register("b").ok
    return relay, hostport, b, RawPeer(hostport)


def test_a_stream_through_a_relay_arrives_as_the_long_way_writes_it(make_node):
    relay, _, b, sender = registered(make_node)
    for payload in PAYLOADS * 2:
        sender.send((NAME, SERVICE), (ME,), payload)
        got = b.receive()
        assert (got.onward, got.return_route[1:], got.payload) == ((ME, SERVICE), (ME,), payload)  # b's route first
    arrival = relay.node.workers[got.return_route[0]]
    body = memoryview(encode_frame((NAME, SERVICE), (ME,), b"x"))[4:]
    routes_end = decode_body(body)[3] + 1
    known = relay.node.shortcuts.get(arrival, body, routes_end)
    assert known.link is relay.node.workers[relay.forwarding.relays["forward_to_b"].link]
    assert known.head == routes_head((ME, SERVICE), got.return_route)


def test_the_next_message_is_written_behind_the_learnt_head_without_routing(make_node):
    relay, _, b, sender = registered(make_node)
    sender.send((NAME, SERVICE), (ME,), b"first")
    arrival = relay.node.workers[b.receive().return_route[0]]
    body = memoryview(encode_frame((NAME, SERVICE), (ME,), b"first"))[4:]
    known = relay.node.shortcuts.get(arrival, body, decode_body(body)[3] + 1)
    marked = Address.local("written by the shortcut")
    known.head = routes_head((marked,), (ME,))  # what only the shortcut would write
    sender.send((NAME, SERVICE), (ME,), b"second")
    got = b.receive()
    assert (got.onward, got.return_route, got.payload) == ((marked,), (ME,), b"second")


def test_a_new_registration_of_the_name_is_followed_at_once(make_node):
    relay, hostport, b, sender = registered(make_node)
    b_again = RawPeer(hostport)  # the same edge over another link, connected before the stream starts
    sender.send((NAME, SERVICE), (ME,), b"to the first")
    assert b.receive().payload == b"to the first"
    assert b_again.register("b", relay.forwarding.claims["forward_to_b"].secret).ok
    sender.send((NAME, SERVICE), (ME,), b"to the second")
    assert b_again.receive().payload == b"to the second"


def test_a_bad_payload_behind_known_routes_is_dropped_and_counted(make_node):
    relay, _, b, sender = registered(make_node)
    sender.send((NAME, SERVICE), (ME,), b"good")
    assert b.receive().payload == b"good"
    frame = encode_frame((NAME, SERVICE), (ME,), b"good")
    sender.send_body(frame[4:-5] + b"\x09good")  # claims nine bytes, has four
    sender.send((NAME, SERVICE), (ME,), b"after")
    assert b.receive().payload == b"after"
    assert relay.node.counters["dropped_bad_messages"] == 1  # counted before "after" was read
