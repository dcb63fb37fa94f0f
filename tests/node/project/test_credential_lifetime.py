"""Credentials hold for the life of a channel, not only its start: a member refreshes its
credential at half its life and presents it inside its channels; a channel whose peer's
credential lapses closes, and the portal streams over it end. On a virtual clock that all
the nodes share: credentials' lives and their refreshes are time moved forward, not waited."""

import gevent
import pytest

from appliance.node.clock import VirtualClock
from appliance.node.project.info import ProjectInfo, ProjectNode
from appliance.secure.identity import Identity
from tests.node.conftest import connect, recv_exactly

TTL = 30
STEP = 0.5  # virtual seconds per step: each step gives the loop a turn for the nodes' messages


@pytest.fixture
def clock():
    return VirtualClock()


def advance_until(clock, condition, limit: float) -> None:
    """Move time forward STEP by STEP until `condition()`, for at most `limit` virtual seconds."""
    end = clock.now() + limit
    while not condition():
        assert clock.now() < end, "not within the time given"
        clock.advance(STEP)


@pytest.fixture
def project(make_node, clock):
    identity = Identity.generate()
    node = make_node("project", identity=identity, clock=clock,
                     project_node=ProjectNode("default", "", {}, lambda _members: None, credential_ttl=TTL))
    host, port = make_node.listener("project").rsplit(":", 1)
    return node, ProjectInfo("default", host, int(port), identity.public_key)


def member(make_node, project, name: str, attributes: dict):
    node, info = project
    runtime = make_node(name, projects=[info], clock=node.node.clock)
    runtime.control.project_enroll(info.to_json(), node.authority.create_ticket(attributes))
    return runtime


class RoundTrips:
    """16 KiB echoes through a portal, one after another, in a greenlet: when each came back,
    and how it ended (the clock's wall time)."""

    def __init__(self, address: str, clock):
        self.clock = clock
        self.sock = connect(address)
        self.sock.settimeout(5)
        self.times: list[float] = []
        self.ended = None  # (loop time, why)
        self.greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        block = b"x" * 16384
        try:
            while True:
                self.sock.sendall(block)
                if recv_exactly(self.sock, len(block)) != block:
                    break
                self.times.append(self.clock.wall())
        except OSError as exc:
            self.ended = (self.clock.wall(), type(exc).__name__)
            return
        self.ended = (self.clock.wall(), "EOF")

    def longest_gap(self, since: float) -> float:
        times = [t for t in self.times if t >= since]
        return max(b - a for a, b in zip(times, times[1:]))


def test_a_refreshing_member_transfers_on_and_a_removed_one_is_cut_off_at_expiry(make_node, project, echo_server,
                                                                                 clock):
    server = make_node("server", projects=[project[1]], clock=clock)
    server.control.outlet_create(echo_server, allow={"role": "client"})
    client = member(make_node, project, "client", {"role": "client"})
    inlet = client.control.inlet_create("127.0.0.1:0", "/node/server/secure/api/service/outlet")["bind_address"]
    first = client.trust.own["default"]
    trips = RoundTrips(inlet, clock)
    started = clock.wall()
    advance_until(clock, lambda: clock.wall() > first.expires_at + 1.5, TTL + 3)
    assert trips.ended is None and client.node.counters["credentials_refreshed"] >= 1
    assert trips.longest_gap(started) <= 2 * STEP  # no break while the credential is renewed
    assert server.node.counters.get("channels_credential_lapsed", 0) == 0

    project[0].control.project_member_remove(client.identifier)
    last = client.trust.own["default"]
    advance_until(clock, lambda: trips.ended is not None, TTL + 3)
    assert last.expires_at <= trips.ended[0] <= last.expires_at + 2 * STEP
    assert server.node.counters["channels_credential_lapsed"] == 1
    assert server.portals.outlets["outlet"].streams == set()


def test_a_member_removed_is_refused_a_new_credential(make_node, project):
    client = member(make_node, project, "client", {})
    assert project[0].control.project_member_list() == [{"identifier": client.identifier, "attributes": {}}]
    project[0].control.project_member_remove(client.identifier)
    with pytest.raises(Exception, match=f"{client.identifier} is not a member of project default"):
        project[0].control.project_member_remove(client.identifier)
    client.trust.own.clear()
    client.control.message_send("/project/default/service/echo", "x")  # fetches, and is refused
    assert "default" not in client.trust.own


def test_a_removed_member_loses_its_relays_at_once_and_stops_asking(make_node, project, caplog):
    project_node = project[0]
    edge = member(make_node, project, "edge", {})
    edge.control.relay_create("edge", "/project/default")
    assert "forward_to_edge" in project_node.forwarding.relays
    asked = []
    handle = project_node.authority.handle
    project_node.authority.handle = lambda msg: (asked.append(msg.peer), handle(msg))
    project_node.control.project_member_remove(edge.identifier)
    assert "forward_to_edge" not in project_node.forwarding.relays and not project_node.forwarding.claims
    last = edge.trust.own["default"]
    clock = project_node.node.clock
    advance_until(clock, lambda: clock.wall() > last.expires_at + 2, TTL + 4)
    retries = [r.getMessage().rsplit("(again in ", 1)[1] for r in caplog.records
               if "cannot refresh our credential: refused" in r.getMessage()]
    assert retries == ["1 s)"] and edge.trust.own == {}  # refused once: what it held is void, not asked again
    assert len(asked) < 12  # (it asked 10 times a second before), relay registrations included
    assert project_node.node.counters["channels_credential_lapsed"] >= 1  # the project node holds it to it too
