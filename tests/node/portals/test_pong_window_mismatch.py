"""Pong grants the inlet the protocol's first window (1 MiB), whatever window the outlet uses
for itself: an outlet with a smaller window takes that first window without calling it a
flow-control violation. (Was: the inlet granted itself its own window size.)"""

import gevent

from tests.node.conftest import connect, recv_exactly


def test_an_outlet_with_a_smaller_window_than_the_inlet(make_node, echo_server):
    a, b = make_node("a"), make_node("b")
    b.control.outlet_create(echo_server)
    b.portals.outlets["outlet"].window = 256 * 1024  # Outlet(window=...): its streams grant this much
    inlet = a.control.inlet_create("127.0.0.1:0", "/node/b/service/outlet")["bind_address"]
    sock = connect(inlet)
    data = b"z" * (1 << 20)
    sender = gevent.spawn(sock.sendall, data)
    try:
        got = recv_exactly(sock, len(data))
    except OSError:
        got = b""
    sender.join(timeout=5)
    assert b.node.counters["portal_protocol_errors"] == 0, "the outlet saw the inlet exceed its credit"
    assert len(got) == len(data)
