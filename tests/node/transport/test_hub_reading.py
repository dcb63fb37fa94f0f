"""Links and portal sockets are read in hub callbacks (no greenlet per connection): what
happens when a stream pauses for credit, when a tick's own Credit breaks the link, and when a
persistent connection redials."""

import os
import socket as stdsocket
import struct

import gevent
import pytest

from tests.helpers import wait_until
from tests.node.conftest import connect, recv_exactly


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_client_that_resets_while_its_stream_waits_for_credit_is_aborted_at_a_tick(make_node, tcp_service):
    """Nobody reads a socket paused for credit: the tick asks the kernel for its error."""
    stalls = []
    service = tcp_service(lambda sock, _a: (stalls.append(sock), gevent.sleep(60)))
    node = make_node("n", link_timeout=1.5)
    node.control.outlet_create(service)
    inlet = node.control.inlet_create("127.0.0.1:0", "/service/outlet")["bind_address"]
    client = connect(inlet)
    streams = node.portals.inlets[next(iter(node.portals.inlets))].streams
    wait_until(lambda: streams and next(iter(streams)).sock.reading, what="the inlet to read its client")
    stream = next(iter(streams))
    client.setblocking(False)

    def paused() -> bool:  # past the 1 MiB window (the target reads nothing): no more reading
        try:
            client.send(b"x" * 65536)
        except BlockingIOError:
            pass
        return not stream.sock.reading

    wait_until(paused, timeout=10, what="the inlet to pause for credit")
    client.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    wait_until(lambda: stream.closed, timeout=5, what="the paused stream to be aborted")
    assert node.node.counters["portal_clients_reset"] == 1


def test_a_tick_whose_credit_breaks_the_link_ends_the_stream_without_an_error(make_node, echo_server):
    a, b = make_node("a"), make_node("b")
    b.control.outlet_create(echo_server)
    inlet = a.control.inlet_create("127.0.0.1:0", "/node/b/service/outlet", alias="i")["bind_address"]
    client = connect(inlet)
    client.sendall(b"hello")
    assert recv_exactly(client, 5) == b"hello"
    stream = next(iter(a.portals.inlets["i"].streams))
    wait_until(lambda: stream.state.receive_window.taken == 5, what="the client to take the echo")
    link = a.node.workers[stream.remote_route[0]]
    link.sock.sock.shutdown(stdsocket.SHUT_WR)  # the link's next send fails at once (EPIPE)
    stream.tick(1.0)  # grants the 5 bytes back over the broken link
    assert stream.closed and not link.connected


def test_persistent_connection_redials_leave_no_fds_behind(make_node):
    a, b = make_node("a"), make_node("b")
    conn = a.tcp.connections[a.control.tcp_connection_create(make_node.listener("b"))["id"]]
    wait_until(lambda: len(b.tcp.connections) == 1, what="b to accept")
    gevent.sleep(0.2)
    fds = open_fds()
    for round_ in range(3):
        for other in list(b.tcp.connections.values()):
            other.close()
        wait_until(lambda: a.node.counters["links_redialled"] == round_ + 1, timeout=10, what="a redial")
        wait_until(lambda: len(b.tcp.connections) == 1 and conn.connected, what="the new link")
    wait_until(lambda: open_fds() == fds, what="the fds of the lost sockets to be closed")
    assert a.control.message_send(f"/service/{conn.address.inner.decode()}/service/echo", "hi")["reply"] == "hi"


@pytest.mark.pure_only("tcp.connect_tcp")
def test_a_connection_reset_before_it_is_greeted_fails_the_dial_at_once(make_node, monkeypatch):
    """A peer (a load balancer whose backend is down) that resets the connection before our
    protocol byte goes out: the dial fails, rather than hand back a closed link whose
    address routes nowhere (a relay registration sent there waited out its 10 s)."""
    from appliance.node.transport import tcp
    from appliance.node.errors import RouteError
    from appliance.wire.multiaddr import parse_hostport

    node = make_node("a", listen=False)
    server = stdsocket.create_server(("127.0.0.1", 0))
    dial = tcp.connect_tcp

    def dial_then_reset(target, timeout=tcp.CONNECT_TIMEOUT):
        sock = dial(target, timeout)
        accepted, _ = server.accept()
        accepted.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_LINGER, struct.pack("ii", 1, 0))
        accepted.close()
        def reset() -> bool:
            try:
                sock.sock.recv_into(bytearray(1), 1, stdsocket.MSG_PEEK)
            except BlockingIOError:
                return False
            except ConnectionResetError:
                return True
            return False

        wait_until(reset, what="the reset to reach us")
        return sock

    monkeypatch.setattr(tcp, "connect_tcp", dial_then_reset)
    try:
        node.tcp.connect(parse_hostport(f"127.0.0.1:{server.getsockname()[1]}"))
    except RouteError as exc:
        assert str(exc).endswith("was reset at once")
    else:
        raise AssertionError("the dial returned a connection that was reset")
    assert not node.tcp.connections
    server.close()
