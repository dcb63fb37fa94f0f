"""A healthy download over a slow link beyond our neighbour (64 kbit/s between the relay and
the edge) is never reset as a dead route: route probes that wait behind the download change
nothing; only a node on the way that says "unreachable" does. (Was: reset after a tick of
silence, although every byte was moving.)"""

import time

from gevent import socket
from gevent.server import StreamServer

from tests.chaos.proxies import ChaosProxy
from tests.node.conftest import connect

THROTTLE = 8000  # bytes/s each way, as tests/chaos/test_links.py
SIZE = 160 * 1024


def test_a_slow_download_behind_a_relay_is_not_reset(make_node):
    def bulk(sock, _addr):
        try:
            sock.sendall(b"d" * SIZE)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
        except OSError:
            pass
        finally:
            sock.close()

    server = StreamServer(("127.0.0.1", 0), bulk)
    server.start()
    relay = make_node("relay")
    proxy = ChaosProxy(("127.0.0.1", int(make_node.listener("relay").rsplit(":", 1)[1]))).start()
    try:
        edge, client = make_node("edge", listen=False), make_node("client", listen=False)
        edge.control.relay_create("edge", proxy.multiaddr)  # the edge reaches the relay over the slow link
        edge.control.outlet_create(f"127.0.0.1:{server.address[1]}")
        inlet = client.control.inlet_create("127.0.0.1:0", "/node/relay/service/forward_to_edge/service/outlet")
        proxy.throttle(THROTTLE)
        sock = connect(inlet["bind_address"])
        sock.settimeout(SIZE / THROTTLE + 15)
        received, started = 0, time.monotonic()
        while received < SIZE:
            try:
                data = sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            received += len(data)
        took = time.monotonic() - started
        assert received == SIZE, (
            f"got {received} of {SIZE} bytes in {took:.1f} s; client counters: "
            f"portal_routes_dead={client.node.counters['portal_routes_dead']}, "
            f"links_dead={[n.node.counters['links_dead'] for n in (relay, edge, client)]}")
    finally:
        proxy.stop()
        server.stop(timeout=0)
