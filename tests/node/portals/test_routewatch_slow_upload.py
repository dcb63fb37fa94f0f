"""An upload over a slow first link (64 kbit/s between the client's node and the relay) to an
outlet behind the relay is never reset as a dead route: the edge's probes wait behind the
upload and that changes nothing. (Was: reset, the data being in the kernel where the
"still queued on our own link" check did not look.)"""

import time

import gevent

from tests.chaos.proxies import ChaosProxy
from tests.helpers import wait_until
from tests.node.conftest import connect


def _setup(make_node, sink, throttle, link_timeout):
    opts = {"link_timeout": link_timeout} if link_timeout else {}
    relay = make_node("relay", **opts)
    proxy = ChaosProxy(("127.0.0.1", int(make_node.listener("relay").rsplit(":", 1)[1]))).start()
    edge, client = make_node("edge", listen=False, **opts), make_node("client", listen=False, **opts)
    edge.control.relay_create("edge", "/node/relay")
    edge.control.outlet_create(sink.hostport)
    # the client's own link to the relay is the slow one
    inlet = client.control.inlet_create("127.0.0.1:0", f"{proxy.multiaddr}/service/forward_to_edge/service/outlet")
    proxy.throttle(throttle)
    return proxy, relay, edge, client, inlet["bind_address"]


def test_a_slow_upload_is_not_reset(make_node, counting_sink):
    throttle, size, sink = 8000, 160 * 1024, counting_sink(reply=b"ok")
    proxy, relay, edge, client, inlet = _setup(make_node, sink, throttle, None)
    try:
        sock = connect(inlet)
        sock.settimeout(size / throttle + 15)
        sender = gevent.spawn(sock.sendall, b"u" * size)
        started = time.monotonic()
        wait_until(lambda: sink.received == size or edge.node.counters["portal_routes_dead"]
                   or client.node.counters["portal_routes_dead"],
                   timeout=size / throttle + 15, what="the upload to end")
        took = time.monotonic() - started
        sender.kill()
        assert sink.received == size, (
            f"the target got {sink.received} of {size} bytes in {took:.1f} s; portal_routes_dead: "
            f"edge {edge.node.counters['portal_routes_dead']}, client {client.node.counters['portal_routes_dead']}; "
            f"links_dead={[n.node.counters['links_dead'] for n in (relay, edge, client)]}")
    finally:
        proxy.stop()

