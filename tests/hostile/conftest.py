"""Hostile-peer fixtures: real node processes (the CLI, each test its own OCKAM_HOME) in the
topology of issue 11, and an attacker next to them.

    client: inlet 127.0.0.1:P --> relay (listener 127.0.0.1:R, forwarding_service) <-- edge
                                                                        (relay n3, /service/outlet
                                                                         -> a sha256_server)
    attacker (127.0.0.2...) --> relay's listener

Every node starts from a TOML file, so that a test can set its `[limits]` and `[node]` keys
(each test module's docstring quotes what it checks).
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest

from appliance.host.process import alive
from tests.chaos.conftest import expected_sha256, fetch_sha256, kill9, node_pid, sha256_server  # noqa: F401
from tests.e2e.conftest import ockam, threaded_server  # noqa: F401 - fixtures reused
from tests.helpers import free_port, wait_until
from tests.hostile.attacker import Peer, Transfer, fd_count

RELAY_NAME = "n3"
PLAIN_ROUTE = f"/node/relay/service/forward_to_{RELAY_NAME}/service/outlet"
SECURE_ROUTE = f"/node/relay/service/forward_to_{RELAY_NAME}/secure/api/service/outlet"


# --- TOML ---------------------------------------------------------------------------------------


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def toml(node: dict | None = None, limits: dict | None = None, **arrays) -> str:
    """[node], [limits], then [[name]] tables for each keyword (a list of dicts)."""
    out = []
    for section, table in (("node", node), ("limits", limits)):
        if table:
            out.append(f"[{section}]")
            out += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
            out.append("")
    for section, tables in arrays.items():
        for table in tables or ():
            out.append(f"[[{section}]]")
            out += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
            out.append("")
    return "\n".join(out)


# --- the topology -------------------------------------------------------------------------------


class Net:
    """relay, edge and client as the module docstring draws them. Options:
    secure: the inlet's route goes through a secure channel to the edge's /service/api;
    relay_limits / edge_limits / client_limits: that node's [limits];
    relay_node / edge_node: extra [node] keys (relay_grace, relay, link_timeout);
    edge / client: False to leave that node out (tests that only need the relay);
    edge_at: where the edge registers n3 (e.g. /node/relay/secure/api: over a secure channel).
    `target` may be anything with a `hostport` that serves `GET <n> <seed>\\n` (a sha256_server)."""

    def __init__(self, cli, target, secure: bool = False, relay_limits=None, edge_limits=None,
                 client_limits=None, relay_node=None, edge_node=None, edge: bool = True, client: bool = True,
                 edge_at: str = "/node/relay"):
        self.ockam = cli
        self.target = target
        self.secure = secure
        self.route = SECURE_ROUTE if secure else PLAIN_ROUTE
        self.relay_port = free_port()
        self.inlet = ("127.0.0.1", free_port())
        self.edge_at = edge_at
        self.nodes: list[str] = []
        self.configs: dict[str, str] = {}
        self._write("relay", {"tcp_listener_address": f"127.0.0.1:{self.relay_port}", **(relay_node or {})},
                    relay_limits)
        if edge:
            self._write("edge", dict(edge_node or {}), edge_limits,
                        relays=[{"name": RELAY_NAME, "at": edge_at}],
                        outlets=[{"from": "/service/outlet", "to": target.hostport}])
        if client:
            self._write("client", {}, client_limits,
                        inlets=[{"from": f"127.0.0.1:{self.inlet[1]}", "to": self.route}])
        self.start("relay")  # first: it creates the default identity the others load
        others = [n for n in ("edge", "client") if n in self.configs]
        errors: list = []
        threads = [threading.Thread(target=self._start_quietly, args=(n, errors)) for n in others]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        if edge:
            self.wait_registered()
        if edge and client:
            self.wait_portal()

    # --- nodes --------------------------------------------------------------------------------
    def _write(self, name: str, node: dict, limits, **arrays) -> None:
        path = Path(self.ockam.home, f"{name}.toml")
        path.write_text(toml(node, limits, **arrays))
        self.configs[name] = str(path)

    def _start_quietly(self, name: str, errors: list) -> None:
        try:
            self.start(name)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    def start(self, name: str) -> None:
        """(Re)start node `name` from its TOML file."""
        self.ockam("node", "create", name, "--config", self.configs[name])
        if name not in self.nodes:
            self.nodes.append(name)

    def pid(self, name: str) -> int:
        return node_pid(self.ockam, name)

    def fds(self, name: str) -> int:
        return fd_count(self.pid(name))

    def alive(self, name: str) -> bool:
        try:
            return alive(self.pid(name))
        except (AssertionError, OSError, ValueError):
            return False

    def kill9(self, name: str) -> None:
        kill9(self.ockam, name)

    def kill_all(self) -> None:
        """SIGKILL every node: the `ockam` fixture's SIGTERM would wait out portal streams."""
        for name in reversed(self.nodes):
            try:
                pid = self.pid(name)
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
            except (AssertionError, OSError, ValueError):
                pass

    # --- what a node says -----------------------------------------------------------------------
    def show(self, name: str) -> dict:
        return json.loads(self.ockam("node", "show", name, "--output", "json"))

    def counters(self, name: str) -> dict:
        return self.show(name)["counters"]

    def counter(self, name: str, key: str) -> int:
        return int(self.counters(name).get(key, 0))

    def relays(self, name: str) -> list:
        return json.loads(self.ockam("relay", "list", "--to", name, "--output", "json"))

    def incoming_relays(self, name: str) -> list:
        return [r for r in self.relays(name) if r.get("direction") == "incoming"]

    def edge_relay(self) -> dict:
        outgoing = [r for r in self.relays("edge") if r.get("direction") == "outgoing"]
        assert [r["name"] for r in outgoing] == [f"forward_to_{RELAY_NAME}"], outgoing
        return outgoing[0]

    def registrations(self) -> int:
        """How many times the edge registered n3: 1 while its relay link was never lost."""
        return int(self.edge_relay()["registrations"])

    def registered(self) -> bool:
        relay = self.edge_relay()
        return relay["registrations"] >= 1 and relay["remote_route"] != "(reconnecting)"

    def wait_registered(self, timeout: float = 15.0) -> None:
        wait_until(self.registered, timeout=timeout, interval=0.1, what="the edge to register n3 at the relay")

    def inlet_connections(self) -> int:
        inlets = json.loads(self.ockam("tcp-inlet", "list", "--at", "client", "--output", "json"))
        return sum(inlet["connections"] for inlet in inlets)

    # --- the portal -----------------------------------------------------------------------------
    def fetch(self, n: int = 64 * 1024, seed: str = "probe", timeout: float = 10.0) -> tuple:
        """(bytes, sha256) of `GET n seed` through the inlet."""
        return fetch_sha256(self.inlet, n, seed, timeout)

    def fetch_ok(self, n: int = 64 * 1024, seed: str = "probe", timeout: float = 5.0) -> bool:
        try:
            return self.fetch(n, seed, timeout) == (n, expected_sha256(n, seed))
        except OSError:
            return False

    def wait_portal(self, timeout: float = 20.0) -> None:
        wait_until(lambda: self.fetch_ok(timeout=3.0), timeout=timeout, interval=0.1,
                   what="a download through the portal before any attack")
        wait_until(lambda: self.inlet_connections() == 0, timeout=10.0, what="the inlet to end its streams")

    def attacker(self, source: str = "127.0.0.2", **options) -> Peer:
        return Peer(self.relay_port, source, **options)


def check_transfer(transfer: Transfer) -> None:
    """The download that spanned the attack arrived whole and right."""
    got = transfer.result()
    expected = (transfer.n, expected_sha256(transfer.n, transfer.seed))
    assert got == expected, (f"the download started before the attack got {got[0]} of {transfer.n} bytes"
                             f"{' with a wrong sha256' if got[0] == transfer.n else ''}"
                             f"{f' ({transfer.error})' if transfer.error else ''}")


def transfer_ok(transfer: Transfer) -> bool:
    return transfer.result() == (transfer.n, expected_sha256(transfer.n, transfer.seed))


@pytest.fixture
def hostile(ockam, sha256_server):  # noqa: F811 - the imported fixtures
    """hostile(**Net options) -> a running Net; its nodes are SIGKILLed at teardown."""
    made: list[Net] = []

    def make(**options) -> Net:
        net = Net(ockam, sha256_server, **options)
        made.append(net)
        return net

    yield make
    for net in made:
        net.kill_all()


@pytest.fixture
def attackers():
    """attackers(peer, ...) registers peers (or lists of them) to be closed at teardown."""
    peers: list = []

    def track(*items):
        for item in items:
            peers.extend(item if isinstance(item, (list, tuple)) else [item])
        return items[0] if len(items) == 1 else items

    yield track
    for peer in peers:
        peer.close()
