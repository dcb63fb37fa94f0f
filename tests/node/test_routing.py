"""Routing between in-process nodes: services, hops, unknown routes, hostile peers."""

import struct

import pytest
from gevent import socket

from appliance.node.errors import RequestTimeout, RouteError
from appliance.wire import bare
from appliance.node.worker import Worker
from appliance.wire.address import Address
from appliance.wire.framing import encode_frame_header
from tests.helpers import wait_until
from tests.node.conftest import connect
from appliance.wire.framing import PROTOCOL_VERSION_BYTE as VERSION


def test_uppercase_over_tcp(make_node):
    a, _ = make_node("a"), make_node("b")
    port = make_node.listener("b").rsplit(":", 1)[1]
    reply = a.control.message_send(f"/ip4/127.0.0.1/tcp/{port}/service/uppercase", "hello")
    assert reply == {"reply": "HELLO", "encoding": "utf-8"}


def test_node_route_and_hop_service(make_node):
    a, _ = make_node("a"), make_node("b")
    assert a.control.message_send("/node/b/service/hop/service/echo", "via hop")["reply"] == "via hop"


def test_return_route_has_connection_then_sender(make_node):
    a, b = make_node("a"), make_node("b")
    seen = []

    class Recorder(Worker):
        def __init__(self):
            self.address = Address.local("recorder")

        def handle(self, msg):
            seen.append(msg)
            b.node.send(msg.return_route, msg.payload)

    b.node.register(Recorder())
    a.control.message_send("/node/b/service/recorder", "x")
    (msg,) = seen
    assert len(msg.return_route) == 2
    assert b.node.workers[msg.return_route[0]] in b.tcp.connections.values()


def test_connection_is_reused_for_the_same_peer(make_node):
    a, _ = make_node("a"), make_node("b")
    a.control.message_send("/node/b/service/echo", "1")
    a.control.message_send("/node/b/service/echo", "2")
    assert len(a.tcp.connections) == 1


def test_unknown_route_times_out_and_is_counted(make_node):
    a, b = make_node("a"), make_node("b")
    with pytest.raises(RequestTimeout, match="no reply"):
        a.control.message_send("/node/b/service/missing", "x", timeout=0.5)
    # the timeout can fire before b has read the message on a loaded machine
    wait_until(lambda: b.node.counters["dropped_unknown_address"] == 1, what="b to count the drop")
    assert b.node.counters["dropped_unknown_address"] == 1


def test_unreachable_route_is_a_route_error(make_node):
    a = make_node("a")
    with pytest.raises(RouteError, match="cannot connect"):
        a.control.message_send("/ip4/127.0.0.1/tcp/1/service/echo", "x")
    with pytest.raises(RouteError, match="unknown node"):
        a.control.message_send("/node/nowhere/service/echo", "x")


@pytest.mark.parametrize("garbage", [
    b"\x07",                                    # wrong protocol version
    VERSION + struct.pack(">I", 1 << 30),        # oversized frame claim
])  # a well-framed body that is not a transport message only drops it: test_hostile_messages.py
def test_garbage_from_a_peer_closes_only_that_connection(make_node, garbage):
    a, b = make_node("a"), make_node("b")
    a.control.message_send("/node/b/service/echo", "before")
    bad = connect(make_node.listener("b"))
    bad.sendall(garbage)
    assert bad.recv(100) in (VERSION, b"")  # b's version byte, then EOF
    wait_until(lambda: bad.recv(100) == b"", what="b to close the bad connection")
    assert a.control.message_send("/node/b/service/echo", "after")["reply"] == "after"
    assert len(b.tcp.connections) == 1


def test_heartbeat_frames_are_ignored(make_node):
    make_node("b")
    sock = connect(make_node.listener("b"))
    sock.sendall(VERSION + encode_frame_header(0) * 3)
    sock.recv(1)
    echo = bare.encode_string("hi")
    from appliance.wire.transport import TransportMessage
    body = TransportMessage((Address.local("echo"),), (Address.local("me"),), echo).encode()
    sock.sendall(encode_frame_header(len(body)) + body)
    (length,) = struct.unpack(">I", sock.recv(4))
    reply = TransportMessage.decode(sock.recv(length))
    assert reply.payload == echo and reply.onward == (Address.local("me"),)
    sock.close()


def test_worker_exception_does_not_take_the_node_down(make_node):
    a = make_node("a")

    class Broken(Worker):
        def __init__(self):
            self.address = Address.local("broken")

        def handle(self, msg):
            raise RuntimeError("boom")

    a.node.register(Broken())
    a.node.send((Address.local("broken"),), b"x")
    assert a.node.counters["worker_errors"] == 1
    assert a.control.message_send("/service/echo", "still up")["reply"] == "still up"


def test_socket_closes_cleanly(make_node):
    make_node("b")
    sock = connect(make_node.listener("b"))
    assert sock.recv(1) == VERSION
    sock.shutdown(socket.SHUT_WR)
    assert sock.recv(10) == b""


def test_a_read_of_many_frames_is_routed_a_slice_at_a_time(make_node):
    """A hundred messages in one read are routed YIELD_EVERY at a time, in order: what else
    the loop has to do runs between the slices (here a callback scheduled by the first
    message), not after all of them."""
    import gevent
    from appliance.node.transport.tcp import YIELD_EVERY
    from appliance.wire.transport import encode_frame
    from tests.node.conftest import RawPeer

    node = make_node("b")
    seen, marks = [], []

    class Probe(Worker):
        def __init__(self):
            self.address = Address.local("probe")

        def handle(self, msg):
            seen.append(msg.payload)
            if len(seen) == 1:
                gevent.get_hub().loop.run_callback(lambda: marks.append(len(seen)))

    node.node.register(Probe())
    peer = RawPeer(make_node.listener("b"))
    peer.sock.sendall(b"".join(encode_frame((Address.local("probe"),), (Address.local("me"),), bytes((i,)))
                               for i in range(100)))
    wait_until(lambda: len(seen) == 100, what="every message routed")
    assert marks == [YIELD_EVERY]
    assert seen == [bytes((i,)) for i in range(100)]
