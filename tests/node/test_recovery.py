"""Every failure heals by itself: after a link, a relay registration or a whole node is lost
and comes back, new connections through plain and encrypted inlets work again within
seconds, and 100 clients arriving at once share one rebuild."""

import time

import gevent
import pytest

from tests.helpers import wait_until
from tests.node.conftest import connect, recv_exactly

ROUTES = {"plain": "/node/relay/service/forward_to_edge/service/outlet",
          "encrypted": "/node/relay/service/forward_to_edge/secure/api/service/outlet"}


def echo_once(address: str, message: bytes = b"are you there?") -> bytes:
    sock = connect(address)
    try:
        sock.settimeout(15)
        sock.sendall(message)
        return recv_exactly(sock, len(message))
    finally:
        sock.close()


def seconds_until_echo(address: str) -> float:
    started = time.monotonic()
    assert echo_once(address) == b"are you there?"
    return time.monotonic() - started


def start_edge(make_node, echo_server, name="edge", **options):
    edge = make_node(name, listen=False, **options)
    edge.control.relay_create("edge", "/node/relay")
    edge.control.outlet_create(echo_server)
    return edge


@pytest.fixture(params=ROUTES)
def working_portal(request, make_node, echo_server):
    """relay, edge (relay + outlet), client (inlet, plain or encrypted) with one echo done."""
    relay = make_node("relay")
    edge = start_edge(make_node, echo_server)
    client = make_node("client")
    inlet = client.control.inlet_create("127.0.0.1:0", ROUTES[request.param])["bind_address"]
    assert echo_once(inlet) == b"are you there?"
    return request.param, relay, edge, client, inlet


def test_inlets_recover_when_the_edges_relay_link_is_rebuilt(working_portal):
    kind, _relay, edge, client, inlet = working_portal

    relay_client = edge.relays.named("forward_to_edge")[0]
    for conn in list(relay_client._owned):  # the edge's link to the relay drops
        conn.close()
    wait_until(lambda: relay_client.registrations == 2, what="the edge to register again")
    assert seconds_until_echo(inlet) < 5
    if kind == "encrypted":
        assert client.node.counters["channels_retired"] == 1  # the stale channel was found out and replaced
        wait_until(lambda: len(client.channels.ends) == 1, timeout=15, what="the retired channel to close")


def test_inlets_recover_when_the_edge_node_is_replaced(working_portal, make_node, echo_server):
    _kind, relay, edge, _client, inlet = working_portal

    edge.shutdown()  # as kill -9 would: its links close, its keys are gone
    wait_until(lambda: "forward_to_edge" not in relay.forwarding.relays, what="the relay to drop the registration")
    # a new node, new keys, same relay name and state directory (where its relay secret is)
    start_edge(make_node, echo_server, name="edge2", relay_secrets=edge.relays.secrets)
    assert seconds_until_echo(inlet) < 5


def test_a_hundred_clients_after_a_failure_share_one_channel_handshake(make_node, echo_server):
    relay = make_node("relay")
    start_edge(make_node, echo_server)
    client = make_node("client")
    inlet = client.control.inlet_create("127.0.0.1:0", ROUTES["encrypted"], check_route=False)["bind_address"]
    clients = [gevent.spawn(echo_once, inlet, f"client {i}".encode()) for i in range(100)]
    gevent.joinall(clients, timeout=30, raise_error=True)
    assert [c.value for c in clients] == [f"client {i}".encode() for i in range(100)]
    assert len(client.channels.ends) == 1 and len(client.tcp.connections) == 1
    assert relay.node.counters["handshakes_failed"] == 0


@pytest.mark.parametrize("kind", ROUTES)
def test_seed_style_routes_through_a_tcp_connection_recover_when_the_relay_restarts(make_node, echo_server, kind):
    relay = make_node("relay")
    relay_address = make_node.listener("relay")
    start_edge(make_node, echo_server)
    client = make_node("client")
    worker = client.control.tcp_connection_create("/node/relay")["worker_address"].removeprefix("0#")
    route = ROUTES[kind].replace("/node/relay", f"/service/{worker}")
    inlet = client.control.inlet_create("127.0.0.1:0", route)["bind_address"]
    assert echo_once(inlet) == b"are you there?"

    relay.shutdown()  # as kill -9 would: every link to it closes
    restarted = make_node("relay", listen=False)
    restarted.tcp.listen(relay_address)
    assert seconds_until_echo(inlet) < 5
    assert client.node.counters["links_redialled"] == 1


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "encrypted"])
def test_open_streams_end_when_the_far_node_dies(make_node, echo_server, secure):
    """The client's link to the relay lives on; the edge behind it vanishes (no FIN reaches
    the client's node). The idle stream is reset within the link timeout, not left hanging."""
    make_node("relay", link_timeout=1.5)
    edge = make_node("edge", listen=False)
    client = make_node("client", link_timeout=1.5)
    edge.control.relay_create("edge", "/node/relay")
    edge.control.outlet_create(echo_server)
    inlet = client.control.inlet_create("127.0.0.1:0", ROUTES["encrypted" if secure else "plain"])["bind_address"]
    sock = connect(inlet)
    sock.sendall(b"idle soon")
    assert recv_exactly(sock, 9) == b"idle soon"
    for conn in list(edge.tcp.connections.values()):  # the edge vanishes: the relay drops its link
        conn.close()
    edge.route_watch.stop()
    sock.settimeout(1.5 + 3)
    with pytest.raises(ConnectionResetError):
        sock.recv(10)
    assert client.node.counters["portal_routes_dead"] == 1
    wait_until(lambda: not any(i.streams for i in client.portals.inlets.values()), what="the inlet to drop the stream")


def test_dnsaddr_routes_recover_when_the_relay_restarts(make_node, echo_server):
    relay = make_node("relay")
    relay_address = make_node.listener("relay")
    start_edge(make_node, echo_server)
    client = make_node("client")
    port = relay_address.rsplit(":", 1)[1]
    route = f"/dnsaddr/localhost/tcp/{port}/service/forward_to_edge/secure/api/service/outlet"
    inlet = client.control.inlet_create("127.0.0.1:0", route)["bind_address"]
    assert echo_once(inlet) == b"are you there?"
    relay.shutdown()
    make_node("relay", listen=False).tcp.listen(relay_address)
    assert seconds_until_echo(inlet) < 5


def test_project_routes_recover_when_the_project_node_restarts(make_node, echo_server):
    from appliance.node.project.info import ProjectInfo, ProjectNode
    from appliance.secure.identity import Identity

    authority, members = Identity.generate(), {}
    project = make_node("project", identity=authority,
                        project_node=ProjectNode("default", "", members, lambda _store: None, credential_ttl=60))
    project_address = make_node.listener("project")
    host, port = project_address.rsplit(":", 1)
    info = ProjectInfo("default", host, int(port), authority.public_key)
    edge = make_node("edge", listen=False, projects=[info])
    edge.control.project_enroll(info.to_json(), project.authority.create_ticket({"relay": "edge"}))
    edge.control.relay_create("edge", "/project/default")
    edge.control.outlet_create(echo_server)
    client = make_node("client", listen=False, projects=[info])
    client.control.project_enroll(info.to_json(), project.authority.create_ticket({}))
    inlet = client.control.inlet_create("127.0.0.1:0", "/project/default/service/forward_to_edge/secure/api/service/outlet")
    assert echo_once(inlet["bind_address"]) == b"are you there?"

    project.shutdown()  # as kill -9 would; it comes back with its identity and members
    restarted = make_node("project", listen=False, identity=authority,
                          project_node=ProjectNode("default", "", dict(project.authority.members),
                                                   lambda _store: None, credential_ttl=60))
    restarted.tcp.listen(project_address)
    assert seconds_until_echo(inlet["bind_address"]) < 5


def test_an_encrypted_inlet_gets_through_a_slow_path(make_node, echo_server):
    """A handshake over a path with 1.2 s round trips needs ~2.4 s: more than an inlet's first
    try allows (2 s), so its next try allows longer, and the client still gets through."""
    from tests.chaos.proxies import ChaosProxy

    edge = make_node("edge")
    edge.control.outlet_create(echo_server)
    host, port = make_node.listener("edge").rsplit(":", 1)
    proxy = ChaosProxy(target=(host, int(port))).start()
    try:
        proxy.delay(0.6)
        client = make_node("client")
        inlet = client.control.inlet_create("127.0.0.1:0", proxy.multiaddr + "/secure/api/service/outlet",
                                    check_route=False)["bind_address"]
        assert echo_once(inlet) == b"are you there?"
        assert client.node.counters["handshakes_timed_out"] + client.node.counters["handshakes_failed"] == 0
    finally:
        proxy.stop()
