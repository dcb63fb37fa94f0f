"""An outlet stream whose inlet acknowledges 7 s after the Pong (a slow path) is kept: only
no Credit within 10 s of the Pong resets it (PROTOCOL.md section 7 step 2). (Was: reset as
early as PONG_TIMEOUT minus one tick, 5 s.)"""

import gevent

from appliance.node.portals import portal
from appliance.node.message import LocalMessage
from appliance.node.worker import Worker
from appliance.stream.state import State
from appliance.wire import portal as wire
from appliance.wire.address import Address
from tests.helpers import wait_until
from tests.node.conftest import connect, recv_exactly


class FakeInlet(Worker):
    def __init__(self, node):
        self.node = node
        self.address = Address.random_local()
        self.got = []  # (loop time, payload, return route)

    def handle(self, msg: LocalMessage) -> None:
        self.got.append((gevent.get_hub().loop.now(), msg.payload, msg.return_route))


def test_an_outlet_stream_acknowledged_7_s_after_its_pong_is_not_reset(make_node, echo_server, monkeypatch):
    ticks = []
    original = portal.PortalStream.tick

    def tick(self, interval):
        ticks.append((self.node, gevent.get_hub().loop.now()))
        return original(self, interval)

    monkeypatch.setattr(portal.PortalStream, "tick", tick)
    a, b = make_node("a"), make_node("b")  # default link_timeout: ticks every 5 s
    b.control.outlet_create(echo_server)
    # an open connection, so that b's ticks can be seen
    inlet = a.control.inlet_create("127.0.0.1:0", "/node/b/service/outlet")["bind_address"]
    sock = connect(inlet)
    sock.sendall(b"x")
    assert recv_exactly(sock, 1) == b"x"
    wait_until(lambda: [t for n, t in ticks if n is b.node], timeout=8, what="a tick at b")
    last = max(t for n, t in ticks if n is b.node)
    interval = b.route_watch.interval
    gevent.sleep(max(0.0, last + interval - 0.8 - gevent.get_hub().loop.now()))  # just before a tick

    fake = FakeInlet(a.node)
    a.node.register(fake)
    route = a.resolver.resolve("/node/b/service/outlet").route
    a.node.send(route, wire.PING, (fake.address,))
    wait_until(lambda: fake.got, timeout=5, what="Pong")
    pong_at, payload, outlet_stream_route = fake.got[0]
    assert payload == wire.PONG
    gevent.sleep(max(0.0, pong_at + 7.0 - gevent.get_hub().loop.now()))
    early = [p for _, p, _ in fake.got[1:]]
    a.node.send(outlet_stream_route, wire.encode_credit(1 << 20), (fake.address,))  # the ack, 7 s after Pong
    gevent.sleep(0.3)
    assert wire.DISCONNECT not in early, (
        f"the outlet reset the stream before the 10 s ack deadline: "
        f"{[(round(t - pong_at, 2), p) for t, p, _ in fake.got[1:]]}")
    streams = [s for s in b.portals.outlets["outlet"].streams if s.remote_route[-1] == fake.address]
    assert streams and streams[0].state.state is State.OPEN
