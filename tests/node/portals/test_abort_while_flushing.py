"""A stream whose state machine is CLOSED (End both ways) may still be writing out what it
received to a slow client. Deleting the inlet (or the outlet, or stopping the node: Worker.stop
is abort too) must reset it at once, not leave it behind for as long as the client reads."""

import socket as stdsocket

import pytest
from gevent.server import StreamServer

from appliance.stream.state import State
from tests.helpers import wait_until


def _server_that_answers_and_closes():
    def serve(sock, _addr):
        sock.recv(100)
        # more than the kernel buffers between the inlet and its non-reading client (about
        # 2.8 MiB here) and less than that plus one window: the outlet sends it all, then End
        sock.sendall(b"d" * (3277 << 10))
        sock.close()
    server = StreamServer(("127.0.0.1", 0), serve)
    server.start()
    return server


def _client(bind):
    from gevent import socket
    host, port = bind.rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    return sock


@pytest.fixture
def flushing_stream(make_node):
    """(node a, inlet alias, stream): End both ways, bytes still to write to a client that
    does not read for a while."""
    server = _server_that_answers_and_closes()
    a, b = make_node("a"), make_node("b")
    b.control.outlet_create(f"127.0.0.1:{server.address[1]}")
    alias = a.control.inlet_create("127.0.0.1:0", "/node/b/service/outlet")["alias"]
    inlet = a.portals.inlets[alias]
    sock = _client(inlet.bind)
    sock.sendall(b"GET\n")
    sock.shutdown(stdsocket.SHUT_WR)
    [stream] = wait_until(lambda: list(inlet.streams), what="stream")
    wait_until(lambda: stream.state.state is State.CLOSED and not stream.closed, timeout=10,
               what="End both ways, with bytes still to write to the client")
    yield a, alias, stream
    sock.close()
    server.stop(timeout=0)


def test_inlet_delete_closes_a_stream_that_is_still_flushing(flushing_stream):
    a, alias, stream = flushing_stream
    a.control.inlet_delete(alias)
    wait_until(lambda: stream.closed, timeout=3, what="inlet delete to close the stream")


def test_node_shutdown_closes_a_stream_that_is_still_flushing(flushing_stream):
    a, _alias, stream = flushing_stream
    a.shutdown()
    wait_until(lambda: stream.closed, timeout=3, what="node shutdown to close the stream")
