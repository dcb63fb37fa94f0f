"""A client that resets while nobody reads its socket (its upload waits for credit because
the service does not read, or it half-closed and the service is silent) is noticed at the
next liveness tick: the inlet stream, its fd and the outlet's connection to the service go."""

import socket as stdsocket
import struct

import gevent
import pytest

from tests.helpers import wait_until
from tests.node.conftest import connect


@pytest.fixture
def silent_portal(make_node, tcp_service):
    """(inlet, outlet, client socket) to a service that neither reads nor answers; the nodes
    check their streams every 1 s."""
    service = tcp_service(lambda sock, _a: gevent.sleep(30))
    a, b = make_node("a", link_timeout=3), make_node("b", link_timeout=3)
    b.control.outlet_create(service)
    inlet = a.portals.inlets[a.control.inlet_create("127.0.0.1:0", "/node/b/service/outlet")["alias"]]
    yield inlet, b.portals.outlets["outlet"], connect(inlet.bind)


def reset_and_expect_cleanup(sock, inlet, outlet) -> None:
    sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # the client gives up: RST
    wait_until(lambda: not inlet.streams and not outlet.streams, timeout=5,
               what="the inlet and the outlet to notice that the client is gone")


def test_a_stalled_uploader_that_resets_is_cleaned_up(silent_portal):
    inlet, outlet, sock = silent_portal
    uploader = gevent.spawn(sock.sendall, b"u" * (64 << 20))
    [stream] = wait_until(lambda: list(inlet.streams), what="stream")
    wait_until(lambda: stream.state.sendable == 0 and stream.remote_route, timeout=15,
               what="the inlet to run out of credit")
    uploader.kill()
    reset_and_expect_cleanup(sock, inlet, outlet)


def test_a_half_closed_client_that_resets_while_the_service_is_silent_is_cleaned_up(silent_portal):
    inlet, outlet, sock = silent_portal
    sock.sendall(b"SELECT slow()")
    sock.shutdown(stdsocket.SHUT_WR)
    [stream] = wait_until(lambda: list(inlet.streams), what="stream")
    wait_until(lambda: stream.state.state.name == "LOCAL_ENDED", what="the End to go out")
    reset_and_expect_cleanup(sock, inlet, outlet)
