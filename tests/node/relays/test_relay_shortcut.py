"""A relay passes a stream's messages on by the shortcut its first one taught it
(node/shortcuts.py): the same bytes as the long way, a new registration or a lost one
followed at once, a bad payload or one too large behind known routes dropped and counted."""

from gevent import socket

from appliance.node.transport.tcp import GATHER_FROM, _sent_where_it_is
from appliance.wire.address import Address
from appliance.wire.framing import PROTOCOL_VERSION_BYTE
from appliance.wire.multiaddr import Tcp
from appliance.wire.transport import decode_body, encode_frame, routes_head
from tests.helpers import recv_exactly, wait_until
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


def raw_body(peer: RawPeer) -> bytes:
    """The next frame's body as it came, not decoded (heartbeats skipped)."""
    while True:
        length = int.from_bytes(recv_exactly(peer.sock, 4), "big")
        if length:
            return recv_exactly(peer.sock, length)


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


def test_a_payload_length_in_a_longer_form_than_ours_is_passed_on_in_ours(make_node):
    _, _, b, sender = registered(make_node)
    frame = encode_frame((NAME, SERVICE), (ME,), b"good")
    for _ in range(2):  # the long way, then what would be the shortcut
        sender.send_body(frame[4:-5] + b"\x84\x80\x00good")  # 4, in three bytes
        assert raw_body(b).endswith(b"\x02me\x04good")


def test_a_frame_that_the_new_head_makes_too_large_is_dropped_every_time(make_node):
    relay = make_node("relay", max_frame=4096)
    hostport = make_node.listener("relay")
    b, sender = RawPeer(hostport), RawPeer(hostport)
    assert b.register("b").ok
    fits_here = 4096 - len(encode_frame((NAME, SERVICE), (ME,), b"")) + 4 - 3  # 3 bytes of length
    for _ in range(2):  # the relay's link address joins the return route: over the limit on b's link
        sender.send((NAME, SERVICE), (ME,), bytes(fits_here))
    sender.send((NAME, SERVICE), (ME,), b"small")
    assert b.receive().payload == b"small"
    assert relay.node.counters["dropped_too_large"] == 2


def test_after_the_name_s_link_is_lost_its_stream_is_dropped_as_unknown(make_node):
    relay, _, b, sender = registered(make_node)
    sender.send((NAME, SERVICE), (ME,), b"before")
    assert b.receive().payload == b"before"
    b.sock.close()
    wait_until(lambda: "forward_to_b" not in relay.forwarding.relays, what="the relay to lose b")
    sender.send((NAME, SERVICE), (ME,), b"after")
    assert sender.echo(b"barrier") == b"barrier"
    assert (relay.node.counters["dropped_unknown_address"], relay.node.counters["dropped_closed_connection"]) == (1, 0)


def test_a_redialled_link_takes_the_long_way_again_and_is_marked_relayed(make_node):
    """A link the node dialled uses its relay. After a redial, the stream's next message goes
    through the relay's `handle` again, even behind other routes of the same length: what
    the long way records of a socket (`relayed`) is recorded of the new one too. (The budget
    reads it only of accepted links, which do not redial; the flag stays true of every link.)"""
    relay, _, b, _ = registered(make_node)
    far = socket.socket()
    far.settimeout(10)
    far.bind(("127.0.0.1", 0))
    far.listen(2)
    link = relay.tcp.connect(Tcp(*far.getsockname()), persistent=True)

    def accepted():
        sock, _ = far.accept()
        sock.sendall(PROTOCOL_VERSION_BYTE)
        assert recv_exactly(sock, 1, timeout=10) == PROTOCOL_VERSION_BYTE
        return sock

    first = accepted()
    first.sendall(encode_frame((NAME, SERVICE), (ME,), b"before"))
    assert b.receive().payload == b"before" and link.relayed
    first.close()
    second = accepted()
    wait_until(lambda: relay.node.counters["links_redialled"] == 1, what="the link to be redialled")
    assert not link.relayed
    unknown = Address.local("x" * len(NAME.inner))  # routes as long as the stream's: the link's hint is theirs
    second.sendall(encode_frame((unknown, SERVICE), (ME,), b"nowhere"))
    wait_until(lambda: relay.node.counters["dropped_unknown_address"] == 1, what="the unknown address")
    second.sendall(encode_frame((NAME, SERVICE), (ME,), b"after"))  # the same link, the same routes' bytes
    assert b.receive().payload == b"after"
    assert link.relayed
    second.close()
    far.close()


def test_a_long_payload_is_queued_as_a_view_only_when_it_is_most_of_its_buffer():
    receive = bytes(100_000)
    assert _sent_where_it_is(memoryview(receive)[10:])
    assert not _sent_where_it_is(memoryview(receive)[:GATHER_FROM])  # would hold 100 000 bytes for 16 384
    assert not _sent_where_it_is(memoryview(receive)[:GATHER_FROM - 1])
    assert _sent_where_it_is(bytearray(GATHER_FROM)) and not _sent_where_it_is(bytes(GATHER_FROM - 1))
