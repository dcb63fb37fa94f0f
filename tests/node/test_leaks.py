"""Nothing leaks: after clients that stall, reset, half-close and vanish, and a relay link
that is lost and rebuilt, every node is back to its starting file descriptors and greenlets."""

import gc
import os
import socket as stdsocket
import struct

import gevent
import greenlet

from tests.helpers import wait_until
from tests.node.conftest import connect, recv_exactly
from tests.node.test_recovery import echo_once


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def live_greenlets() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, greenlet.greenlet) and not o.dead)


def reset(sock) -> None:
    sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_fds_and_greenlets_return_to_their_starting_count(make_node, tcp_service):
    def serve(sock, _addr):  # `bulk` streams until the client goes; anything else is echoed
        try:
            first = sock.recv(65536)
            if first == b"bulk":
                while True:
                    sock.sendall(b"b" * 65536)
            while first:
                sock.sendall(first)
                first = sock.recv(65536)
        except OSError:
            pass
        finally:
            sock.close()

    service = tcp_service(serve)
    make_node("relay")
    edge, client = make_node("edge", listen=False), make_node("client")
    edge.control.relay_create("edge", "/node/relay")
    edge.control.outlet_create(service)
    inlets = [client.control.inlet_create("127.0.0.1:0", "/node/relay/service/forward_to_edge" + secure + "/service/outlet")
              ["bind_address"] for secure in ("", "/secure/api")]
    for inlet in inlets:
        assert echo_once(inlet) == b"are you there?"
    gc.collect()
    fds, greenlets = open_fds(), live_greenlets()

    for inlet in inlets:
        stalled = [connect(inlet) for _ in range(3)]
        for sock in stalled:
            sock.sendall(b"bulk")
            sock.recv(1)  # then they stop reading, and are reset mid-stream
        half = [connect(inlet) for _ in range(3)]
        for sock in half:
            sock.sendall(b"half")
            sock.shutdown(stdsocket.SHUT_WR)
            assert recv_exactly(sock, 4) == b"half"
        pending = [connect(inlet) for _ in range(3)]  # connect and vanish before Pong
        for sock in stalled + pending:
            reset(sock)
        for sock in half:
            sock.close()
    relay_client = edge.relays.named("forward_to_edge")[0]
    for conn in list(relay_client._owned):  # the relay link is lost, and rebuilt
        conn.close()
    wait_until(lambda: relay_client.registrations == 2, what="the edge to register again")
    for inlet in inlets:
        assert gevent.spawn(echo_once, inlet).get(timeout=15) == b"are you there?"

    def settled():
        gc.collect()
        return (not any(i.streams for i in client.portals.inlets.values()) and not edge.portals.outlets["outlet"].streams
                and open_fds() <= fds and live_greenlets() <= greenlets)
    wait_until(settled, timeout=15, what="fds and greenlets to return to their starting count")
