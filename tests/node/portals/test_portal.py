"""TCP portals between in-process nodes: streaming, closing, failing targets, hostile input."""

import hashlib
import os
import time

import gevent
import pytest

from appliance.node.clock import VirtualClock
from appliance.node.portals import routecheck
from appliance.node.worker import Worker
from appliance.node.errors import AddressInUse, RouteError
from appliance.stream import state as stream_state
from appliance.wire import portal as portal_wire
from appliance.wire.address import Address
from tests.helpers import free_port, wait_until
from tests.node.conftest import connect, recv_exactly


@pytest.fixture
def portal_through_relay(make_node, echo_server):
    """inlet on n1 -> relay n2 -> outlet on n3 -> echo server; yields (inlet address, nodes)."""
    relay, private, client = make_node("n2"), make_node("n3"), make_node("n1")
    private.control.relay_create("n3", "/node/n2")
    private.control.outlet_create(echo_server)
    inlet = client.control.inlet_create("127.0.0.1:0", "/node/n2/service/forward_to_n3/service/outlet")
    return inlet["bind_address"], (client, relay, private)


def test_echo_through_inlet_relay_outlet(portal_through_relay):
    address, _ = portal_through_relay
    sock = connect(address)
    sock.sendall(b"ping through the portal")
    assert recv_exactly(sock, 23) == b"ping through the portal"
    sock.close()


def test_large_transfer_keeps_every_byte_in_order(portal_through_relay):
    address, _ = portal_through_relay
    data = os.urandom(8 << 20)
    sock = connect(address)
    sender = gevent.spawn(sock.sendall, data)
    received = recv_exactly(sock, len(data))
    sender.get(timeout=30)
    assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()
    sock.close()


def test_closing_the_client_closes_the_outlet_side(portal_through_relay):
    address, (client, _relay, private) = portal_through_relay
    sock = connect(address)
    sock.sendall(b"x")
    recv_exactly(sock, 1)
    outlet = private.portals.outlets["outlet"]
    assert len(outlet.streams) == 1
    sock.close()
    wait_until(lambda: not outlet.streams, what="the outlet stream to close")
    wait_until(lambda: not client.portals.inlets[next(iter(client.portals.inlets))].streams, what="the inlet stream to close")


def test_target_closing_closes_the_client(make_node, tcp_service):
    def greet_and_close(sock, _addr):
        sock.sendall(b"bye")
        sock.close()

    service = tcp_service(greet_and_close)
    a = make_node("a")
    a.control.outlet_create(service)
    inlet = a.control.inlet_create("127.0.0.1:0", "/service/outlet")
    sock = connect(inlet["bind_address"])
    assert recv_exactly(sock, 3) == b"bye"
    assert sock.recv(10) == b""


def test_target_down_closes_the_client_quickly(make_node):
    a = make_node("a")
    a.control.outlet_create(f"127.0.0.1:{free_port()}")
    inlet = a.control.inlet_create("127.0.0.1:0", "/service/outlet")
    sock = connect(inlet["bind_address"])
    started = time.monotonic()
    assert sock.recv(10) == b""
    assert time.monotonic() - started < stream_state.PONG_TIMEOUT  # closed by the outlet's Disconnect


def test_an_inlet_whose_outlet_is_missing_refuses_clients_at_once(make_node, caplog):
    """Issue 13: such an inlet was created without a word, and each client hung for 10 s."""
    a = make_node("a")
    inlet = a.control.inlet_create("127.0.0.1:0", "/service/nothing_here", alias="db")
    assert (inlet["state"], inlet["last_error"]) == ("down", routecheck.ENDS_EARLY)
    sock = connect(inlet["bind_address"])
    started = time.monotonic()
    with pytest.raises(ConnectionResetError):
        sock.recv(10)
    assert time.monotonic() - started < 1.0
    assert a.node.counters["inlet_clients_refused"] == 1 and a.portals.inlets["db"].tally.failed == 1
    assert f"inlet db ({inlet['bind_address']}, route /service/nothing_here): refusing clients: " \
           f"{routecheck.ENDS_EARLY}" in caplog.text


class Silent(Worker):
    """Takes every message and answers none: an outlet on a black-holed path."""

    def __init__(self, node):
        self.node, self.address = node, Address.local("silent")

    def handle(self, msg) -> None:
        pass


def test_a_silent_outlet_resets_the_client_after_the_pong_timeout(make_node, caplog):
    clock = VirtualClock()
    a = make_node("a", clock=clock)
    a.node.register(Silent(a.node))
    creating = gevent.spawn(a.control.inlet_create, "127.0.0.1:0", "/service/silent", alias="db")
    gevent.sleep(0.01)
    clock.advance(routecheck.ANSWER_TIMEOUT)
    inlet = creating.get(timeout=5)
    # no answer is no proof of a broken route (a slow link): clients wait for their Pong
    shown = a.control.inlet_show("db")
    assert (inlet["state"], shown["state"], shown["last_error"]) == (
        "connecting", "connecting", "no answer from the outlet within 2 s")
    sock = connect(inlet["bind_address"])
    wait_until(lambda: a.portals.inlets["db"].streams, what="the client's stream")
    for _ in range(int(stream_state.PONG_TIMEOUT / 0.5) - 1):
        clock.advance(0.5)
    assert a.portals.inlets["db"].streams and a.node.counters["portal_pong_timeouts"] == 0
    clock.advance(0.5)
    with pytest.raises(ConnectionResetError):
        sock.recv(10)
    assert a.node.counters["portal_pong_timeouts"] == 1
    assert f"inlet db ({inlet['bind_address']}, route /service/silent): no answer from the outlet " \
           "within 10 s (no Pong to our Pings); closing the client" in caplog.text


def test_an_inlet_whose_route_does_not_resolve_logs_why(make_node, caplog):
    a = make_node("a")
    inlet = a.control.inlet_create("127.0.0.1:0", "/node/ghost/service/outlet", alias="db", check_route=False)
    wait_until(lambda: a.portals.inlets["db"].describe()["state"] == "down", timeout=5, what="the inlet's first check")
    sock = connect(inlet["bind_address"])
    with pytest.raises(ConnectionResetError):
        sock.recv(10)
    reason = a.portals.inlets["db"].describe()["last_error"]
    assert "ghost" in reason
    assert f"inlet db ({inlet['bind_address']}, route /node/ghost/service/outlet): refusing clients: {reason}" \
        in caplog.text


def test_many_concurrent_connections(portal_through_relay):
    address, _ = portal_through_relay

    def one(i):
        sock = connect(address)
        message = f"connection {i} ".encode() * 100
        sock.sendall(message)
        got = recv_exactly(sock, len(message))
        sock.close()
        return got == message

    jobs = [gevent.spawn(one, i) for i in range(100)]
    gevent.joinall(jobs, timeout=60)
    assert all(job.value for job in jobs)


def test_busy_inlet_port_and_duplicate_outlet(make_node, echo_server):
    a = make_node("a")
    inlet = a.control.inlet_create("127.0.0.1:0", "/service/outlet")
    with pytest.raises(RouteError, match="cannot listen"):
        a.control.inlet_create(inlet["bind_address"], "/service/outlet")
    a.control.outlet_create(echo_server)
    with pytest.raises(AddressInUse):
        a.control.outlet_create(echo_server)


def test_garbage_portal_messages_are_counted_not_fatal(make_node, echo_server):
    a = make_node("a")
    a.control.outlet_create(echo_server)
    a.node.send((Address.local("outlet"),), b"\x09garbage", (Address.local("nobody"),))
    a.node.send((Address.local("outlet"),), portal_wire.encode_payload(b"no ping first"))
    assert a.node.counters["bad_portal_messages"] == 2
    inlet = a.control.inlet_create("127.0.0.1:0", "/service/outlet")
    sock = connect(inlet["bind_address"])
    sock.sendall(b"ok")
    assert recv_exactly(sock, 2) == b"ok"


def test_deleting_an_inlet_closes_its_clients(make_node, echo_server):
    a = make_node("a")
    a.control.outlet_create(echo_server)
    inlet = a.control.inlet_create("127.0.0.1:0", "/service/outlet", alias="web")
    sock = connect(inlet["bind_address"])
    sock.sendall(b"x")
    recv_exactly(sock, 1)
    a.control.inlet_delete("web")
    with pytest.raises(ConnectionResetError):
        sock.recv(10)


def test_an_outlet_keeps_no_origin_from_a_peer_it_refuses(make_node, echo_server):
    from appliance.node.message import LocalMessage

    b = make_node("b")
    b.control.outlet_create(echo_server, authorized=["I" + "0" * 40], proxy_protocol="v2")
    outlet = b.portals.outlets["outlet"]
    origin = portal_wire.encode_origin("10.1.2.3:443", "127.0.0.1:6000")
    b.node.route(LocalMessage((outlet.address,), (Address.random_local(),), origin))  # no peer identity
    assert not outlet._origins and b.node.counters["outlet_origins_refused"] == 1
