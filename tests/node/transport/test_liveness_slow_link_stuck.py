"""A slow link that still moves (64 kbit/s, the kernel's send queue shrinking in steps) is
not closed as stuck: progress counts what the kernel sends (SIOCOUTQ), not only what the
writer hands it, over four link timeouts. (Was: closed after 15 s as "the peer reads
nothing", resetting every stream on it.) Default link_timeout; 6 uploads over the link."""

import time

import gevent
from gevent import socket

from appliance.stream.state import State
from tests.chaos import proxies
from tests.chaos.proxies import ChaosProxy
from tests.helpers import wait_until

STREAMS = 6


def test_a_slow_but_moving_link_is_not_closed_as_stuck(make_node, monkeypatch, counting_sink):
    monkeypatch.setattr(proxies, "MAX_PENDING", 16 * 1024)  # the middlebox buffers little: the kernel queues
    sink = counting_sink()
    make_node("relay")
    proxy = ChaosProxy(("127.0.0.1", int(make_node.listener("relay").rsplit(":", 1)[1]))).start()
    socks = []
    try:
        edge, client = make_node("edge", listen=False), make_node("client", listen=False)
        edge.control.relay_create("edge", "/node/relay")
        edge.control.outlet_create(sink.hostport)
        inlet = client.control.inlet_create("127.0.0.1:0", f"{proxy.multiaddr}/service/forward_to_edge/service/outlet")
        port = int(inlet["bind_address"].rsplit(":", 1)[1])
        socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(STREAMS)]
        streams = client.portals.inlets[inlet["alias"]].streams
        wait_until(lambda: sum(s.state.state is State.OPEN for s in streams) == STREAMS, timeout=10,
                   what="every stream open")
        (link,) = [c for c in client.tcp.connections.values()]
        proxy.throttle(8000)
        for sock in socks:
            gevent.spawn(sock.sendall, b"u" * (1 << 20))
        wait_until(lambda: not link.writer.idle, timeout=10, what="the link's kernel buffer to fill")
        outq_before, got_before, started = link.sock.unsent(), sink.received, time.monotonic()
        deadline = started + 2 * client.tcp.monitor.timeout
        outq_last = outq_before
        while time.monotonic() < deadline and not client.node.counters["links_dead"]:
            gevent.sleep(0.5)
            outq_last = link.sock.unsent() or outq_last
        took = time.monotonic() - started
        assert client.node.counters["links_dead"] == 0, (
            f"the link was closed as stuck after {took:.1f} s while it moved: kernel queue "
            f"{outq_before} -> {outq_last} bytes, target got {sink.received - got_before} more bytes, "
            f"writer.sent unchanged at {link.writer.sent}")
    finally:
        for sock in socks:
            sock.close()
        proxy.stop()
