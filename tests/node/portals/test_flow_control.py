"""Per-stream flow control, half-close and orphans, between in-process nodes.

A client that stops reading stalls its own stream and nothing else; what a node holds for
it is bounded by the window; it then resumes and gets every byte."""

import hashlib
import random
import time

import gevent
import pytest

from appliance.node.portals import portal
from appliance.stream import state as stream_state
from appliance.stream.state import State
from tests.helpers import wait_until
from tests.node.conftest import connect, recv_exactly

BULK = 24 << 20


def _bulk_bytes(size: int) -> bytes:
    return random.Random(7).randbytes(size)


@pytest.fixture
def bulk_or_echo_server(tcp_service):
    """`bulk\\n` gets BULK pseudo-random bytes; anything else is echoed."""
    data = _bulk_bytes(BULK)

    def serve(sock, _addr):
        try:
            first = sock.recv(65536)
            if first == b"bulk\n":
                sock.sendall(data)
                return
            while first:
                sock.sendall(first)
                first = sock.recv(65536)
        except OSError:
            pass
        finally:
            sock.close()

    service = tcp_service(serve)
    yield service, hashlib.sha256(data).hexdigest()


def read_to_eof(sock) -> bytes:
    chunks = []
    while data := sock.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


def _round_trips(address: str, count: int) -> int:
    sock = connect(address)
    sock.settimeout(5)
    for i in range(count):
        message = f"round trip {i}".encode()
        sock.sendall(message)
        assert recv_exactly(sock, len(message)) == message
    sock.close()
    return count


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "encrypted"])
def test_a_stalled_client_stalls_nobody_else(make_node, bulk_or_echo_server, secure):
    target, digest = bulk_or_echo_server
    make_node("relay")
    edge, client, other = make_node("edge"), make_node("client"), make_node("other")
    edge.control.relay_create("edge", "/node/relay")
    edge.control.outlet_create(target)
    route = "/node/relay/service/forward_to_edge" + ("/secure/api" if secure else "") + "/service/outlet"
    inlet = client.control.inlet_create("127.0.0.1:0", route)["bind_address"]
    second = client.control.inlet_create("127.0.0.1:0", route)["bind_address"]
    elsewhere = other.control.inlet_create("127.0.0.1:0", route)["bind_address"]

    stalled = connect(inlet)
    stalled.sendall(b"bulk\n")
    received = [stalled.recv(1)]  # then it stops reading
    outlet = edge.portals.outlets["outlet"]
    wait_until(lambda: outlet.streams and next(iter(outlet.streams)).state.sendable == 0,
               what="the outlet to run out of credit for the stalled client")

    # the same inlet, another inlet on the same node, another node through the same relay
    for address in (inlet, second, elsewhere):
        assert gevent.spawn(_round_trips, address, 20).get(timeout=20) == 20

    [stream] = client.portals.inlets[next(iter(client.portals.inlets))].streams
    assert stream.writer._size <= stream.state.receive_window.size + portal.CHUNK

    size = 1  # the stalled client resumes: every byte arrives, in order
    while size < BULK:
        data = stalled.recv(1 << 20)
        assert data, f"stream ended after {size} of {BULK} bytes"
        received.append(data)
        size += len(data)
    stalled.close()
    assert hashlib.sha256(b"".join(received)).hexdigest() == digest


def test_half_close_reaches_the_service_and_the_reply_still_flows(make_node, tcp_service):
    def reply_after_eof(sock, _addr):
        request = read_to_eof(sock)
        sock.sendall(b"got " + request)  # answered only once the client said it is done
        sock.close()

    service = tcp_service(reply_after_eof)
    a, b = make_node("a"), make_node("b")
    b.control.outlet_create(service)
    inlet = a.control.inlet_create("127.0.0.1:0", "/node/b/service/outlet")["bind_address"]
    sock = connect(inlet)
    sock.sendall(b"the whole request")
    sock.shutdown(1)  # SHUT_WR
    assert read_to_eof(sock) == b"got the whole request"
    sock.close()
    wait_until(lambda: not b.portals.outlets["outlet"].streams and not a.portals.inlets[next(iter(a.portals.inlets))].streams,
               what="both sides of the finished stream to close")


def test_an_outlet_connection_whose_inlet_never_acknowledges_is_closed(make_node, echo_server, monkeypatch):
    """A Ping whose sender never answers Pong leaves no connection to the service behind."""
    from appliance.wire import portal as wire
    from appliance.wire.address import Address

    monkeypatch.setattr(stream_state, "PONG_TIMEOUT", 1.5)
    a, b = make_node("a", link_timeout=1.5), make_node("b", link_timeout=1.5)  # b looks every 0.5 s
    b.control.outlet_create(echo_server)
    route = a.resolver.resolve("/node/b/service/outlet").route
    for _ in range(20):  # a node that pings and never listens for Pong
        a.node.send(route, wire.PING, (Address.random_local(),))
    outlet = b.portals.outlets["outlet"]
    wait_until(lambda: len(outlet.streams) == 20, what="the outlet to connect for every Ping")
    assert all(s.state.state is State.AWAITING_ACK for s in outlet.streams)
    opened = time.monotonic()
    wait_until(lambda: not outlet.streams, timeout=5, what="the unacknowledged connections to close")
    # none outlives the Pong timeout by more than the tick at which it is looked at
    assert time.monotonic() - opened <= stream_state.PONG_TIMEOUT + b.tcp.monitor.interval + 0.3
    assert b.node.counters["portal_streams_unacknowledged"] == 20, dict(b.node.counters)


@pytest.mark.pure_only("Node.send")
def test_an_inlet_that_gives_up_tells_the_outlet(make_node, monkeypatch, tcp_service):
    """The target accepts but the Pong is lost: the inlet gives up and its Disconnect frees the outlet."""
    monkeypatch.setattr(stream_state, "PONG_TIMEOUT", 0.6)
    monkeypatch.setattr(stream_state, "PING_RETRY", 0.3)
    service = tcp_service(lambda sock, _a: gevent.sleep(30))
    a, b = make_node("a"), make_node("b")
    b.control.outlet_create(service)
    inlet = a.control.inlet_create("127.0.0.1:0", "/node/b/service/outlet")["bind_address"]
    real_send = b.node.send

    def lose_answers(onward, payload, return_route=()):  # Pong and the window after it
        if payload[:1] not in (portal.portal_wire.PONG, b"\x04"):
            real_send(onward, payload, return_route)
    b.node.send = lose_answers
    sock = connect(inlet)
    with pytest.raises(ConnectionResetError):
        sock.recv(10)
    wait_until(lambda: not b.portals.outlets["outlet"].streams, timeout=2, what="the outlet to let go")
    assert b.node.counters["portal_streams_cancelled"] >= 1
