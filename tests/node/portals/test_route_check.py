"""An inlet's route check (node/portals/routecheck.py) and a relay's condition, between in-process
nodes: what `list`, `/ready` and `/metrics` read."""

import time

import gevent
import pytest

from appliance.node.portals import routecheck
from appliance.stream import state as stream_state
from tests.helpers import wait_until
from tests.node.conftest import connect, recv_exactly

ROUTE = "/node/relay/service/forward_to_edge/service/outlet"


def portal(make_node, echo_server):
    relay, edge, client = make_node("relay"), make_node("edge", listen=False), make_node("client")
    edge.control.relay_create("edge", "/node/relay")
    edge.control.outlet_create(echo_server)
    return relay, edge, client


def test_a_route_that_worked_is_connecting_while_it_is_rebuilt_then_down(make_node, echo_server, monkeypatch):
    monkeypatch.setattr(stream_state, "PONG_TIMEOUT", 1.5)  # a route that worked is down after it
    monkeypatch.setattr(routecheck, "RETRY_MAX", 0.25)
    relay, edge, client = portal(make_node, echo_server)
    assert client.control.inlet_create("127.0.0.1:0", ROUTE, alias="db")["state"] == "up"
    inlet = client.portals.inlets["db"]
    edge.control.relay_delete("edge")  # forward_to_edge is gone: probes come back `unreachable`
    wait_until(lambda: "forward_to_edge" not in relay.forwarding.relays, timeout=5, what="the relay to forget it")
    inlet.routes[0].check.kick()
    wait_until(lambda: inlet.routes[0].check.condition.last_error == routecheck.ENDS_EARLY, timeout=5, what="a failed check")
    failed_at = time.monotonic()
    assert inlet.describe()["state"] == "connecting"  # a client now still waits for its Pong
    wait_until(lambda: inlet.describe()["state"] == "down", timeout=5, what="the inlet to give up")
    assert time.monotonic() - failed_at >= 1.0
    edge.control.relay_create("edge", "/node/relay")
    wait_until(lambda: inlet.describe()["state"] == "up", timeout=5, what="the inlet to find its outlet again")
    sock = connect(inlet.bind)
    sock.sendall(b"back")
    assert recv_exactly(sock, 4) == b"back"


def test_a_lost_first_link_is_checked_at_once(make_node, echo_server):
    _relay, _edge, client = portal(make_node, echo_server)
    client.control.inlet_create("127.0.0.1:0", ROUTE, alias="db")
    inlet = client.portals.inlets["db"]
    for conn in list(client.tcp.connections.values()):
        conn.close()
    wait_until(lambda: inlet.routes[0].check.condition.changes >= 2, timeout=2, what="the check to notice")
    assert inlet.routes[0].check.condition.last_error.startswith("its first link (")
    wait_until(lambda: inlet.describe()["state"] == "up", timeout=5, what="the route to be rebuilt")


def test_an_outlet_tells_a_prober_it_refuses_that_it_is_not_there_for_it(make_node, echo_server):
    edge, client = make_node("edge"), make_node("client")
    edge.control.outlet_create(echo_server, authorized=["I" + "0" * 40])
    inlet = client.control.inlet_create("127.0.0.1:0", "/node/edge/secure/api/service/outlet", alias="db")
    assert (inlet["state"], inlet["last_error"]) == ("down", routecheck.ENDS_EARLY)


def test_relay_condition_follows_its_registration(make_node):
    make_node("relay")
    edge = make_node("edge", listen=False)
    edge.control.relay_create("edge", "/node/relay")
    client = edge.relays.named("forward_to_edge")[0]
    assert (client.condition.health.value, client.registrations, client.reconnects) == ("up", 1, 0)
    for conn in list(client._owned):
        conn.close()
    wait_until(lambda: client.registrations == 2, timeout=5, what="the edge to register again")
    described = client.describe()
    assert (described["state"], described["reconnects"], described["last_error"]) == \
        ("up", 1, "the link to /node/relay was lost")
    gevent.sleep(0)


@pytest.mark.pure_only("SecureChannels.close")
def test_a_secure_inlet_replaces_the_channel_to_an_outlet_node_that_restarted(make_node, echo_server, monkeypatch):
    """The check's probe rode the old channel, which the new node cannot read: unanswered, and
    the inlet stayed up on a dead channel until a client waited its way through a new one."""
    monkeypatch.setattr(routecheck, "CHECK_EVERY", 0.3)
    monkeypatch.setattr(routecheck, "ANSWER_TIMEOUT", 0.3)
    _relay, edge, client = portal(make_node, echo_server)
    secure = "/node/relay/service/forward_to_edge/secure/api/service/outlet"
    assert client.control.inlet_create("127.0.0.1:0", secure, alias="db")["state"] == "up"
    old = set(client.channels.ends)
    edge.channels.close = lambda: None  # as kill -9: the client does not hear its channel close
    edge.shutdown()
    portal_edge = make_node("edge2", listen=False, relay_secrets=edge.relays.secrets)  # restarted: new channels
    portal_edge.control.relay_create("edge", "/node/relay")
    portal_edge.control.outlet_create(echo_server)
    wait_until(lambda: set(client.channels.ends) - old, timeout=10, what="the check to make a new channel")
    assert client.portals.inlets["db"].describe()["state"] == "up"
    started = time.monotonic()
    sock = connect(client.portals.inlets["db"].bind)
    sock.sendall(b"fresh")
    assert recv_exactly(sock, 5) == b"fresh"
    assert time.monotonic() - started < 1.0  # no client paid for finding the dead channel


def test_an_inlet_to_a_node_that_is_down_is_made_and_says_why(make_node):
    from tests.helpers import free_port

    client = make_node("client")
    port = free_port()
    inlet = client.control.inlet_create("127.0.0.1:0", f"/ip4/127.0.0.1/tcp/{port}/service/outlet", alias="db")
    assert inlet["state"] == "down"
    assert inlet["last_error"] == f"cannot connect to 127.0.0.1:{port}: Connection refused"


def test_one_route_of_two_down_is_degraded_not_unready(make_node, echo_server):
    from appliance.node.control import metrics

    _relay, _edge, client = portal(make_node, echo_server)
    client.control.inlet_create("127.0.0.1:0", [ROUTE, "/node/relay/service/forward_to_nobody/service/outlet"], alias="db")
    ready, waiting, degraded = metrics.readiness(client)
    assert ready and not waiting
    assert [(item["inlet"], item["route"], item["state"]) for item in degraded] == \
        [("db", "/node/relay/service/forward_to_nobody/service/outlet", "down")]

