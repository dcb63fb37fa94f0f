"""Crash recovery with the real CLI: kill -9 the edge or the relay node, bring it back, and a
new connection through the inlet echoes again within 5 s.

    c: inlet 127.0.0.1:P --> r (listener, forwarding_service) <-- e (relay `e` at /node/r, outlet)
                                                                    `--> echo server

Recovery time = from the moment the restarted node (and, for the edge, its relay and outlet)
is back until a new connection through the inlet echoes 32 KiB exactly. Each is printed and
listed under "chaos recovery times" at the end of the run.

The last two tests reproduce what these scenarios found on the way.
"""

import json
import os
import socket
import time

import pytest

from appliance.host.process import alive
from tests.chaos.conftest import create_node, echo_once, kill9, node_pid, recovery_time
from tests.helpers import free_port, wait_until

pytestmark = pytest.mark.timeout(60)

RECOVERY_WITHIN = 5.0
PLAIN = "/node/r/service/forward_to_e/service/outlet"
SECURE = "/node/r/service/forward_to_e/secure/api/service/outlet"


class Topology:
    """r, e and c as the module docstring draws them. `relay_at` is where e registers (its route
    to r: /node/r, or a proxy in front of r)."""

    def __init__(self, ockam, echo_port: int, route: str, relay_port: int = 0, relay_at: str = "/node/r"):
        self.ockam, self.echo_port, self.relay_at = ockam, echo_port, relay_at
        self.relay_port = relay_port or free_port()
        create_node(ockam, "r", self.relay_port)
        self.start_edge()
        create_node(ockam, "c")
        self.inlet = ("127.0.0.1", free_port())
        ockam("tcp-inlet", "create", "--at", "/node/c", "--from", f"127.0.0.1:{self.inlet[1]}", "--to", route)
        recovery_time(self.inlet, within=10.0, what="the portal to work before any chaos")
        # that stream must be over before a node is killed: a stream caught closing by the crash
        # is the orphan of test_open_stream_is_ended_when_the_edge_dies, not what is tested here
        self.wait_streams_closed()

    def start_edge(self) -> None:
        """Node e, its relay `e` at r and its outlet: what an edge's startup does."""
        create_node(self.ockam, "e")
        self.ockam("relay", "create", "e", "--at", self.relay_at, "--to", "/node/e")
        self.ockam("tcp-outlet", "create", "--at", "/node/e", "--from", "/service/outlet",
                   "--to", f"127.0.0.1:{self.echo_port}")

    def restart_relay(self) -> None:
        info = create_node(self.ockam, "r", self.relay_port)
        assert info["listener_address"] == f"127.0.0.1:{self.relay_port}"

    def inlet_connections(self) -> int:
        inlets = json.loads(self.ockam("tcp-inlet", "list", "--at", "c", "--output", "json"))
        return sum(inlet["connections"] for inlet in inlets)

    def wait_streams_closed(self, timeout: float = 5.0) -> None:
        wait_until(lambda: self.inlet_connections() == 0, timeout=timeout, what="the inlet to end its streams")

    def assert_exact_echo(self, size: int = 256 * 1024) -> None:
        payload = os.urandom(size)
        got, error = echo_once(self.inlet, payload, timeout=10.0)
        assert error is None and got == payload, (len(got), error)

    def kill_all(self) -> None:
        """End of test: SIGKILL what runs, so that the `ockam` fixture's SIGTERM does not wait
        10 s for portal streams that failed recovery attempts left behind."""
        for name in ("c", "e", "r"):
            try:
                if alive(node_pid(self.ockam, name)):
                    kill9(self.ockam, name)
            except (AssertionError, OSError):
                pass


@pytest.fixture
def topology(ockam, echo_target):
    """topology(route, **Topology options) -> a running Topology, SIGKILLed at teardown."""
    made = []

    def make(route: str, **options) -> Topology:
        made.append(Topology(ockam, echo_target, route, **options))
        return made[-1]

    yield make
    for item in made:
        item.kill_all()


ROUTES = [pytest.param(PLAIN, id="plain"), pytest.param(SECURE, id="secure")]


def open_fds(ockam, names) -> dict:
    return {name: len(os.listdir(f"/proc/{node_pid(ockam, name)}/fd")) for name in names}


def assert_fds_return(ockam, before: dict) -> None:
    """The nodes that lived through the crash hold no more descriptors than before it, once
    the portal's streams are over."""
    wait_until(lambda: all(n <= before[name] for name, n in open_fds(ockam, before).items()), timeout=20,
               what=f"the survivors' file descriptors to return to {before}")


@pytest.mark.parametrize("route", ROUTES)
def test_edge_killed_and_recreated(ockam, topology, record_recovery, route):
    net = topology(route)
    before = open_fds(ockam, ("c", "r"))
    old_pid = kill9(ockam, "e")
    net.start_edge()
    assert node_pid(ockam, "e") != old_pid
    took = recovery_time(net.inlet, within=RECOVERY_WITHIN, what="a new connection to reach the new edge")
    record_recovery(took)
    net.assert_exact_echo()
    net.wait_streams_closed(timeout=20)
    assert_fds_return(ockam, before)


@pytest.mark.parametrize("route", ROUTES)
def test_relay_killed_and_restarted_on_the_same_port(ockam, topology, record_recovery, route):
    net = topology(route)
    before = open_fds(ockam, ("c", "e"))
    kill9(ockam, "r")
    net.restart_relay()
    took = recovery_time(net.inlet, within=RECOVERY_WITHIN, what="the edge to register at the new relay")
    record_recovery(took)
    net.assert_exact_echo()
    net.wait_streams_closed(timeout=20)
    assert_fds_return(ockam, before)


def test_relay_registration_reset_while_waiting(topology, chaos_proxy, record_recovery):
    """e reaches r through a proxy, which resets e's link and, for a moment, resets whatever
    dials it (a load balancer whose backend is down): e's immediate re-registration is reset
    while it waits for the reply. Then the backend is back, and e should be registered again
    within 5 s (its backoff starts below 1 s)."""
    relay_port = free_port()
    proxy = chaos_proxy(relay_port)
    net = topology(PLAIN, relay_port=relay_port, relay_at=proxy.multiaddr)
    proxy.retarget(("127.0.0.1", free_port()))  # nothing listens there: new dials get a RST
    assert proxy.reset_all() == 1  # e's registration link
    wait_until(lambda: proxy.stats()["refused"] >= 1, timeout=5, what="e to dial the relay again")
    proxy.retarget(("127.0.0.1", relay_port))
    took = recovery_time(net.inlet, within=RECOVERY_WITHIN, what="e to register again through the proxy")
    record_recovery(took)
    net.assert_exact_echo()


def test_open_stream_is_ended_when_the_edge_dies(ockam, topology):
    """A client connected through the portal when the edge is killed should learn it (EOF or
    RST) within 15 s (the node's own link timeout), and the inlet should drop the stream."""
    net = topology(PLAIN)
    with socket.create_connection(net.inlet, timeout=5) as sock:
        sock.sendall(b"ping")
        assert sock.recv(4) == b"ping"
        kill9(ockam, "e")
        start = time.monotonic()
        sock.settimeout(15)
        try:
            data = sock.recv(1)
        except socket.timeout:
            pytest.fail("the client heard nothing for 15 s after the edge died")
        except ConnectionResetError:
            data = b""
        assert data == b"", data
        print(f"client told after {time.monotonic() - start:.2f} s")
    net.wait_streams_closed()
