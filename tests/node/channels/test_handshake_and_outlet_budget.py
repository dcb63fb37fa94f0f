"""A flood of secure channel Inits is refused beyond the node's handshake budget, and the
channels people need still get made; one inlet cannot open unbounded connections at an
outlet."""

import os

import pytest

from appliance.limits.budgets import Limits
from appliance.node.errors import RequestTimeout
from appliance.node.sources import message_source
from appliance.node.worker import Worker
from appliance.secure.suites import CHACHAPOLY
from appliance.wire import secure_channel as wire
from appliance.wire.address import Address
from tests.helpers import wait_until
from tests.node.conftest import RawPeer, connect, recv_exactly


def test_a_handshake_flood_is_refused_and_a_real_channel_still_comes_up(make_node):
    target = make_node("target", limits=Limits(handshakes_per_second_per_source=5))
    flood = RawPeer(make_node.listener("target"))
    for _ in range(50):  # an Init is an ephemeral key: any 32 bytes will do
        flood.send((Address.local("api"),), (Address.local("me"),), wire.encode_init(CHACHAPOLY.id, os.urandom(32)))
    answers = [flood.receive().payload for _ in range(50)]
    refused = [a for a in answers if a[0] == wire.REFUSE]
    assert [a[0] for a in answers].count(wire.RESPONSE) == 50 - len(refused)
    assert {wire.decode_step(a)[1] for a in refused} == {
        "busy: over 5 handshakes a second from one source; try again later"}
    assert len(refused) >= 40 and target.node.counters["handshakes_refused"] == len(refused)
    client = make_node("client")  # another source: its own budget
    assert client.control.message_send("/node/target/secure/api/service/echo", "in")["reply"] == "in"


def test_one_inlet_cannot_open_more_than_its_share_at_an_outlet(make_node, echo_server):
    node = make_node("n", limits=Limits(outlet_connections_per_route=2))
    node.control.outlet_create(echo_server)
    inlet = node.control.inlet_create("127.0.0.1:0", "/node/n/service/outlet")["bind_address"]
    kept = [connect(inlet) for _ in range(2)]
    for sock in kept:
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"ping"
    third = connect(inlet)
    third.sendall(b"ping")
    with pytest.raises(ConnectionResetError):  # refused: the outlet answered Disconnect, an abort
        recv_exactly(third, 4)
    assert node.node.counters["outlet_connections_refused"] >= 1
    kept[0].close()
    wait_until(lambda: len(node.portals.outlets["outlet"].streams) == 1, what="the closed connection's stream to end")
    again = connect(inlet)
    again.sendall(b"pong")
    assert recv_exactly(again, 4) == b"pong"


class Spy(Worker):
    """Keeps the return routes of what it gets, answers nothing."""

    def __init__(self):
        self.address = Address.local("spy")
        self.return_routes = []

    def handle(self, msg) -> None:
        self.return_routes.append(msg.return_route)


def test_behind_a_relay_we_reached_over_our_own_channel_each_relay_connection_is_a_source(make_node):
    make_node("relay")
    edge = make_node("edge", listen=False)
    edge.control.relay_create("edge", "/node/relay/secure/api")  # as to a project relay
    spy = Spy()
    edge.node.register(spy)
    for name in ("u1", "u2", "u3"):
        with pytest.raises(RequestTimeout):
            make_node(name).control.message_send("/node/relay/service/forward_to_edge/service/spy", "x", timeout=0.3)
    wait_until(lambda: len(spy.return_routes) == 3, what="the spy to get all three messages")
    assert len({message_source(edge.node, route) for route in spy.return_routes}) == 3
