"""Each node sends heartbeats every link_timeout/3 of ITS OWN timeout but judges its peer by
that same own timeout: an edge with the default 15 s facing a relay configured with
link_timeout = 60 (config/relay.toml invites the setting) declares the healthy idle link dead
after 10-15 s, resetting the portal streams on it (and re-registering its relays)."""

from appliance.node.clock import VirtualClock
from tests.node.conftest import connect, recv_exactly


def test_an_idle_healthy_link_to_a_node_with_a_longer_link_timeout_stays_up(make_node, echo_server):
    clock = VirtualClock()
    relay = make_node("relay", link_timeout=60.0, clock=clock)  # heartbeats every 20 s
    edge = make_node("edge", clock=clock)  # default 15 s: expects something every <= 10 s
    relay.control.outlet_create(echo_server)
    inlet = edge.control.inlet_create("127.0.0.1:0", "/node/relay/service/outlet")["bind_address"]
    sock = connect(inlet)
    sock.sendall(b"hi")
    assert recv_exactly(sock, 2) == b"hi"
    for _ in range(64):  # an idle session of 32 s; both nodes alive and responsive throughout
        clock.advance(0.5)
    assert edge.node.counters["heartbeats_sent"] >= 6 and relay.node.counters["heartbeats_sent"] >= 6
    assert edge.node.counters["links_dead"] == 0, "a healthy link was declared dead"
    sock.settimeout(2)
    sock.sendall(b"still there")
    assert recv_exactly(sock, 11) == b"still there"
