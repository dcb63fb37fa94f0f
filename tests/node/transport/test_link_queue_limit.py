"""A link's writer fails ('peer is not reading') above 64 MiB queued, but what may queue on a
link is the sum of the windows of all the streams it carries (1 MiB each, unbounded count):
with more than ~64 busy streams on one link, a peer that is merely slow for a few seconds
(a slow WAN hop, a busy relay) makes the node kill the whole link, resetting every stream on it."""

import gevent

from tests.helpers import wait_until
from tests.node.conftest import connect

STREAMS = 100


def test_many_streams_over_a_slow_link_do_not_kill_it(make_node, stalling_proxy, tcp_service):
    def bulk(sock, _addr):
        try:
            sock.recv(10)
            while True:
                sock.sendall(b"b" * 65536)
        except OSError:
            pass
    service_address = tcp_service(bulk)

    a, b = make_node("a"), make_node("b")
    proxy = stalling_proxy(make_node.listener("b"), toward_target=False)  # b -> a may be slow
    proxy.stalled = True
    b.control.outlet_create(service_address)
    inlet = a.control.inlet_create("127.0.0.1:0", f"/ip4/127.0.0.1/tcp/{proxy.port}/service/outlet")["bind_address"]
    proxy.stalled = False
    clients = [connect(inlet) for _ in range(STREAMS)]
    for sock in clients:
        sock.sendall(b"go")
    outlet = b.portals.outlets["outlet"]
    wait_until(lambda: len(outlet.streams) == STREAMS, timeout=20, what="all streams to open")
    proxy.stalled = True  # the link is slow for 3 s; every stream has at most one window in flight
    gevent.sleep(3)
    proxy.stalled = False
    gevent.sleep(1)
    links = [c for c in b.tcp.connections.values() if not c.outgoing]
    queued = max((c.writer.backlog for c in links), default=0)
    assert b.node.counters["dropped_closed_connection"] == 0 and len(outlet.streams) == STREAMS, (
        f"link killed: {dict(b.node.counters)}; {len(outlet.streams)} streams left, queued {queued}")
