"""UDP portals on in-process nodes: datagrams whole, one flow per client, answers to their
own client only, through a relay and a secure channel, flows that end when idle."""

import socket as stdsocket
import threading
import time

import gevent
import pytest
from gevent import socket

from appliance.node.clock import VirtualClock
from appliance.node.message import LocalMessage
from appliance.node.transport.queues import DATAGRAM_BACKLOG
from appliance.wire import udp_portal as wire
from appliance.wire.address import Address
from tests.helpers import wait_until
from tests.node.conftest import recv_exactly

ROUTE = "/node/relay/service/forward_to_edge/secure/api/service/udp"


class UdpEcho:
    """A UDP service that answers each datagram with b"echo:" + it, from the port it came to;
    records each client's source address."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.seen = []
        self.greenlet = gevent.spawn(self._serve)

    def _serve(self):
        while True:
            data, address = self.sock.recvfrom(65_535)
            self.seen.append(address)
            self.sock.sendto(b"echo:" + data, address)

    def stop(self):
        self.greenlet.kill()
        self.sock.close()


@pytest.fixture
def udp_echo():
    server = UdpEcho()
    yield server
    server.stop()


def client(timeout: float = 5.0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(timeout)
    return sock


def portal(make_node, udp_echo, route: str = ROUTE, **options):
    make_node("relay", **options)
    edge = make_node("edge", listen=False, **options)
    edge.control.relay_create("edge", "/node/relay")
    edge.control.udp_outlet_create(f"127.0.0.1:{udp_echo.port}", "/service/udp")
    user = make_node("user", listen=False, **options)
    inlet = user.control.udp_inlet_create("127.0.0.1:0", route)
    host, port = inlet["bind_address"].rsplit(":", 1)
    return user, edge, (host, int(port))


def ask(sock, address, data: bytes) -> bytes:
    """Send until an answer comes (UDP may lose the first while the route is being made)."""
    for _ in range(20):
        sock.sendto(data, address)
        try:
            return sock.recv(70_000)
        except socket.timeout:
            continue
    raise AssertionError("no answer")


def test_datagrams_cross_an_encrypted_portal_through_a_relay_whole_and_each_client_gets_its_own(make_node, udp_echo):
    user, edge, address = portal(make_node, udp_echo)
    a, b = client(1.0), client(1.0)
    assert ask(a, address, b"from a") == b"echo:from a"
    assert ask(b, address, b"from b") == b"echo:from b"
    for i in range(20):
        a.sendto(b"a%d" % i, address)
        b.sendto(b"b%d" % i, address)
    got_a = {a.recv(100) for _ in range(20)}
    got_b = {b.recv(100) for _ in range(20)}
    assert got_a == {b"echo:a%d" % i for i in range(20)} and got_b == {b"echo:b%d" % i for i in range(20)}
    big = bytes(range(256)) * 234 + b"!" * 96  # 60 000 bytes
    assert ask(a, address, big) == b"echo:" + big
    assert len(set(udp_echo.seen)) == 2  # one source port at the service per client
    shown = user.control.udp_inlet_show(user.control.udp_inlet_list()[0]["alias"])
    assert shown["flows"] == 2 and shown["datagrams_in"] >= 43 and shown["dropped"] == {}
    outlet = edge.control.udp_outlet_show("udp")
    assert outlet["flows"] == 2 and outlet["datagrams_out"] == outlet["datagrams_in"]


def test_an_outlet_refuses_a_flow_it_may_not_carry_and_the_inlet_says_why(make_node, udp_echo, caplog):
    make_node("edge")
    edge = make_node("edge2")
    edge.control.udp_outlet_create(f"127.0.0.1:{udp_echo.port}", "/service/udp", authorized=["I" + "0" * 40])
    user = make_node("user", listen=False)
    inlet = user.control.udp_inlet_create("127.0.0.1:0", "/node/edge2/secure/api/service/udp")
    host, port = inlet["bind_address"].rsplit(":", 1)
    sock = client(0.3)
    sock.sendto(b"let me in", (host, int(port)))
    wait_until(lambda: "the outlet refused client" in caplog.text, timeout=5, what="the refusal")
    assert "not authorized" in caplog.text and udp_echo.seen == []
    assert edge.control.udp_outlet_show("udp")["dropped"] == {"refused": 1}


def test_flows_end_after_their_idle_timeout_and_a_new_datagram_opens_one_again(make_node, udp_echo):
    clock = VirtualClock()
    user, edge, address = portal(make_node, udp_echo, clock=clock)
    sock = client(1.0)
    assert ask(sock, address, b"hi") == b"echo:hi"
    for _ in range(11):
        clock.advance(5.0)  # 55 s: still there
    assert edge.control.udp_outlet_show("udp")["flows"] == 1
    clock.advance(10.0)
    wait_until(lambda: edge.control.udp_outlet_show("udp")["flows"] == 0, what="the outlet's flow to end")
    assert user.control.udp_inlet_list()[0]["flows"] == 0
    assert ask(sock, address, b"again") == b"echo:again"


def test_a_link_that_is_behind_drops_datagrams_and_queues_everything_else(make_node, stalling_proxy):
    make_node("b")
    a = make_node("a", listen=False)
    proxy = stalling_proxy(make_node.listener("b"))
    a.control.message_send(f"/ip4/127.0.0.1/tcp/{proxy.port}/service/echo", "warm")
    (link,) = a.tcp.connections.values()
    proxy.stalled = True
    echo = (link.address, Address.local("echo"))
    block = b"x" * (256 * 1024)
    for _ in range(400):  # the kernel's buffers fill, then the writer queues
        a.node.route(LocalMessage(echo, (), block))
        if link.writer.backlog >= 2 * DATAGRAM_BACKLOG:
            break
    assert link.writer.backlog >= DATAGRAM_BACKLOG
    backlog = link.writer.backlog
    a.node.route(LocalMessage(echo, (), wire.encode_datagram(b"d" * 1000), datagram=True))
    assert a.node.counters["datagrams_dropped_link_behind"] == 1 and link.writer.backlog == backlog
    a.node.route(LocalMessage(echo, (), b"not a datagram"))
    assert link.writer.backlog > backlog  # queued: only what may be lost is dropped


def test_metrics_count_a_udp_portal_s_datagrams_and_flows(make_node, udp_echo):
    from appliance.node.control import metrics
    from appliance.observe.exposition import render

    user, edge, address = portal(make_node, udp_echo)
    assert ask(client(1.0), address, b"count me") == b"echo:count me"
    text = render(metrics.families(edge)).decode()
    assert 'ockam_udp_portal_flows_open{kind="outlet",name="udp"} 1' in text
    assert 'ockam_udp_portal_bytes_total{kind="outlet",name="udp",direction="to_service"}' in text


def test_a_datagram_flood_does_not_hurt_a_tcp_portal_on_the_same_links(make_node, udp_echo, echo_server):
    user, edge, address = portal(make_node, udp_echo)
    edge.control.outlet_create(echo_server)
    inlet = user.control.inlet_create("127.0.0.1:0", "/node/relay/service/forward_to_edge/secure/api/service/outlet")
    host, port = inlet["bind_address"].rsplit(":", 1)
    stop, flooded = threading.Event(), [0]

    def flood():  # a thread of its own, as a flood comes from outside
        sock = stdsocket.socket(stdsocket.AF_INET, stdsocket.SOCK_DGRAM)
        data = b"f" * 8192
        while not stop.is_set():
            try:
                sock.sendto(data, address)
                flooded[0] += 1
            except OSError:
                pass
        sock.close()

    thread = threading.Thread(target=flood, daemon=True)
    with socket.create_connection((host, int(port)), timeout=10) as tcp:
        tcp.sendall(b"warm")
        assert tcp.recv(4) == b"warm"
        thread.start()
        times = []
        try:
            for i in range(200):
                started = time.monotonic()
                tcp.sendall(b"%08d" % i)
                assert recv_exactly(tcp, 8) == b"%08d" % i
                times.append(time.monotonic() - started)
        finally:
            stop.set()
            thread.join(timeout=10)
    times.sort()
    assert flooded[0] > 1000 and times[int(len(times) * 0.99)] < 0.25, (flooded[0], times[-5:])


def test_an_inlet_flow_takes_datagrams_and_refusals_only_over_its_own_route(make_node, udp_echo):
    user, edge, address = portal(make_node, udp_echo)
    sock = client(1.0)
    assert ask(sock, address, b"mine") == b"echo:mine"
    (flow,) = user.portals.udp_inlets[user.control.udp_inlet_list()[0]["alias"]].flows.by_key.values()
    stranger = (Address.local("echo"),)  # anything but the link the flow's route starts with
    flow.handle(LocalMessage((flow.address,), stranger, wire.encode_datagram(b"injected")))
    flow.handle(LocalMessage((flow.address,), stranger, wire.encode_refused("go away")))
    assert user.node.counters["portal_messages_from_wrong_route"] == 2 and flow.refused_at is None
    assert ask(sock, address, b"still mine") == b"echo:still mine"


def test_a_refused_flow_asks_again_after_a_while(make_node, udp_echo):
    clock = VirtualClock()
    make_node("edge", clock=clock)
    edge = make_node("edge2", clock=clock)
    edge.control.udp_outlet_create(f"127.0.0.1:{udp_echo.port}", "/service/udp", authorized=["I" + "0" * 40])
    user = make_node("user", listen=False, clock=clock)
    inlet = user.control.udp_inlet_create("127.0.0.1:0", "/node/edge2/secure/api/service/udp")
    host, port = inlet["bind_address"].rsplit(":", 1)
    sock = client(0.3)
    sock.sendto(b"one", (host, int(port)))
    wait_until(lambda: edge.control.udp_outlet_show("udp")["dropped"] == {"refused": 1}, what="the refusal")
    wait_until(lambda: any(f.refused_at is not None for f in user.portals.udp_inlets[inlet["alias"]].flows.by_key.values()),
               what="the inlet to hear it")
    sock.sendto(b"two", (host, int(port)))  # within REFUSED_RETRY: dropped at the inlet
    wait_until(lambda: user.control.udp_inlet_show(inlet["alias"])["dropped"] == {"refused": 1}, what="the drop")
    clock.advance(5.0)
    sock.sendto(b"three", (host, int(port)))  # asks again
    wait_until(lambda: edge.control.udp_outlet_show("udp")["dropped"] == {"refused": 2}, what="the second ask")


def test_an_inlet_on_a_busy_port_leaves_nothing_behind(make_node, udp_echo):
    clock = VirtualClock()
    node = make_node("n", clock=clock)
    busy = stdsocket.socket(stdsocket.AF_INET, stdsocket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    timers = len(clock._timers)
    with pytest.raises(Exception, match="cannot listen on UDP 127.0.0.1:"):
        node.control.udp_inlet_create(f"127.0.0.1:{busy.getsockname()[1]}", "/service/udp")
    assert len(clock._timers) == timers and node.control.udp_inlet_list() == []
    busy.close()
