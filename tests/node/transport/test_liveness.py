"""Link liveness: idle links stay up on heartbeats; a link whose peer falls silent is found
dead within the timeout, and what rides on it ends with it and is rebuilt."""

import pytest

from appliance.node.transport.tcp import TcpConnection
from tests.chaos.proxies import ChaosProxy
from tests.helpers import wait_until
from tests.node.conftest import connect, recv_exactly

FAST = 1.5  # link timeout in these tests: ticks every 0.5 s, dead after 1.0-1.5 s of silence


def _links(runtime):
    return [c for c in runtime.tcp.connections.values() if isinstance(c, TcpConnection)]


def test_idle_links_stay_up_on_heartbeats(make_node):
    a, b = make_node("a", link_timeout=FAST), make_node("b", link_timeout=FAST)
    a.control.tcp_connection_create("/node/b")
    wait_until(lambda: a.node.counters["heartbeats_sent"] >= 6 and b.node.counters["heartbeats_sent"] >= 6,
               timeout=10, what="both sides to send heartbeats on the idle link")
    assert len(_links(a)) == 1 and len(_links(b)) == 1
    assert a.node.counters["links_dead"] == b.node.counters["links_dead"] == 0


def test_a_silent_peer_is_found_dead_and_the_link_closed(make_node):
    a = make_node("a", link_timeout=FAST)
    make_node("b", link_timeout=600)  # b says nothing for minutes: a vanished peer, to a
    route = a.resolver.resolve("/node/b").route  # an ordinary (not persistent) connection
    [link] = _links(a)
    closed = []
    link.on_close(closed.append)
    wait_until(lambda: closed, timeout=FAST + 2, what="the silent link to be declared dead")
    assert a.node.counters["links_dead"] == 1 and not _links(a)
    assert route[0] not in a.node.workers


def test_a_persistent_connection_found_dead_dials_again_under_the_same_address(make_node):
    a = make_node("a", link_timeout=FAST)
    make_node("b", link_timeout=600)
    created = a.control.tcp_connection_create("/node/b")
    [link] = _links(a)
    lost = []
    link.on_close(lost.append)
    wait_until(lambda: lost and a.node.counters["links_redialled"] >= 1, timeout=FAST + 5,
               what="the dead link to be dialled again")
    assert a.node.counters["links_dead"] >= 1
    assert a.control.tcp_connection_list()[-1]["worker_address"] == created["worker_address"]
    assert a.tcp.find(created["id"]) is link


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "encrypted"])
def test_portal_streams_on_a_blackholed_link_reset_their_clients(make_node, echo_server, secure):
    """A middlebox between the nodes silently drops the connection: no FIN, no RST."""
    edge = make_node("edge", link_timeout=FAST)
    client = make_node("client", link_timeout=FAST)
    edge.control.outlet_create(echo_server)
    host, port = make_node.listener("edge").rsplit(":", 1)
    proxy = ChaosProxy(target=(host, int(port))).start()
    try:
        route = proxy.multiaddr + ("/secure/api" if secure else "") + "/service/outlet"
        inlet = client.control.inlet_create("127.0.0.1:0", route)["bind_address"]
        sock = connect(inlet)
        sock.sendall(b"hello")
        assert recv_exactly(sock, 5) == b"hello"
        proxy.blackhole()
        _expect_reset(sock)
    finally:
        proxy.stop()
    assert client.node.counters["links_dead"] == 1
    assert client.node.counters["portal_streams_link_lost"] == 1


def _expect_reset(sock) -> None:
    sock.settimeout(FAST + 3)
    with pytest.raises(ConnectionResetError):  # never an endless hang
        sock.recv(10)


def test_a_relay_over_a_dead_link_registers_again(make_node):
    make_node("relay", link_timeout=600)  # silent: a's link to it looks dead
    edge = make_node("edge", link_timeout=FAST)
    edge.control.relay_create("edge", "/node/relay")
    client = edge.relays.named("forward_to_edge")[0]
    wait_until(lambda: client.registrations >= 2, timeout=FAST + 5, what="the relay to register again")
    assert edge.node.counters["links_dead"] >= 1


@pytest.mark.parametrize("timeout", [10.0, 12.0, 15.0, 17.4, 60.0, 3600.0])
def test_a_link_is_declared_dead_within_its_timeout_and_never_between_a_peers_frames(make_node, timeout):
    """Any node sends a frame on every link at least every 5 s (a heartbeat when it sent
    nothing for a tick of at most 2.5 s): with a timeout of 10 s or more, the silence that
    kills a link is longer than that, and no longer than the timeout."""
    monitor = make_node("n", listen=False, link_timeout=timeout).tcp.monitor
    shortest_silence = monitor.dead_after * monitor.interval  # declared after more than this...
    longest_silence = (monitor.dead_after + 1) * monitor.interval  # ...and at most this
    assert 2 * 2.5 < shortest_silence and longest_silence <= timeout + 1e-9
