"""ockam.exe as a Windows service under Wine's service manager, behind a Linux relay.

What Wine cannot show (the Event Log's contents, ACLs being enforced, session 0, the service
manager restarting a killed service process) is listed in packaging/README.md."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.helpers import free_port, wait_until
from tests.windows.conftest import windows_path

RUNNING, STOP_PENDING, STOPPED = 4, 3, 1
ERROR_SERVICE_SPECIFIC_ERROR = 1066


def edge_topology(path: Path, target: int, relay: int | None = None, extra: str = "") -> Path:
    relays = f'[[relays]]\nname = "edge"\nat = "/ip4/127.0.0.1/tcp/{relay}"\n\n' if relay else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[node]\nname = "edge"\n\n{relays}[[outlets]]\nfrom = "/service/outlet"\n'
                    f'to = "127.0.0.1:{target}"\n{extra}')
    return path


def connect(port: int) -> socket.socket | None:
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError:
        return None
    return sock


def echoes(sock: socket.socket, data: bytes) -> bool:
    sock.sendall(data)
    received = b""
    while len(received) < len(data):
        chunk = sock.recv(len(data) - len(received))
        if not chunk:
            return False
        received += chunk
    return received == data


@pytest.fixture
def linux_relay(ockam):
    """A Linux relay node and a Linux client whose inlets reach the edge through it."""
    port = free_port()
    ockam("node", "create", "relay", f"--tcp-listener-address=127.0.0.1:{port}")
    ockam("node", "create", "client")

    def inlet(outlet: str = "outlet") -> int:
        local = free_port()
        ockam("tcp-inlet", "create", "--at", "client", "--from", f"127.0.0.1:{local}",
              "--to", f"/ip4/127.0.0.1/tcp/{port}/service/forward_to_edge/secure/api/service/{outlet}")
        return local

    ockam.relay_port, ockam.inlet = port, inlet
    return ockam


def test_the_service_runs_the_edge_reloads_and_stops_gracefully(windows, linux_relay, echo_target, tmp_path):
    topology = edge_topology(tmp_path / "edge.toml", echo_target, relay=linux_relay.relay_port)
    installed = windows.install(topology)
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout == "ockam-edge\n"
    # Wine's service manager lacks the failure-actions flag: the install says so, and goes on
    assert "restarts after a crash, but not after it stops with an error: ChangeServiceConfig2: Invalid level" \
        in installed.stderr
    # RUNNING only once the topology is up: the relay is registered when install returns
    assert windows.service_state("edge")["state"] == RUNNING
    assert "forward_to_edge" in linux_relay("relay", "list", "--at", "relay")
    live = wait_until(lambda: connect(linux_relay.inlet()), timeout=15, what="the client's inlet")
    assert echoes(live, b"through the Windows service")

    edge_topology(topology, echo_target, relay=linux_relay.relay_port,
                  extra=f'\n[[outlets]]\nfrom = "/service/outlet2"\nto = "127.0.0.1:{echo_target}"\n')
    assert windows("node", "reload", "edge") == "Reloaded node edge: 1 started, 0 stopped, 2 unchanged"
    second = wait_until(lambda: connect(linux_relay.inlet("outlet2")), timeout=15, what="the reloaded outlet")
    assert echoes(second, b"a new outlet")
    second.close()

    windows.wine.run("sc", "stop", "ockam-edge", timeout=30)
    wait_until(lambda: windows.service_state("edge")["state"] == STOP_PENDING, what="STOP_PENDING")
    assert echoes(live, b"during the drain"), "an open portal connection is given its drain"
    assert windows.service_state("edge")["state"] == STOP_PENDING, "the node waits for the open connection"
    live.close()
    wait_until(lambda: windows.service_state("edge") == {"state": STOPPED, "win32_exit_code": 0,
                                                          "service_exit_code": 0},
               timeout=15, what="a clean STOPPED once the connection closed")

    assert windows("service", "uninstall", "--name", "edge") == "Removed ockam-edge"
    gone = windows.run("service", "status", "--name", "edge", check=False)
    assert gone.returncode == 1 and gone.stderr.startswith("Error: service ockam-edge: ")
    assert gone.stderr.count("\n") == 1


def test_a_topology_mistake_stops_the_service_with_exit_code_2_and_says_why(windows, echo_target, tmp_path):
    topology = edge_topology(tmp_path / "edge.toml", echo_target)
    assert windows.install(topology, "--no-start").returncode == 0
    topology.write_text(topology.read_text() + "\n[node.extra]\nbogus = 1\n")
    windows.wine.run("sc", "start", "ockam-edge", timeout=30)
    wait_until(lambda: windows.service_state("edge") == {
        "state": STOPPED, "win32_exit_code": ERROR_SERVICE_SPECIFIC_ERROR, "service_exit_code": 2},
        timeout=30, what="STOPPED with the service-specific exit code 2")
    log = Path(windows.home, "nodes", "edge", "node.log").read_text()
    assert "ockam-edge: cannot run: " in log and "node.extra" in log


def test_a_busy_port_stops_the_service_with_exit_code_1(windows, echo_target, tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    topology = edge_topology(tmp_path / "edge.toml", echo_target)
    assert windows.install(topology, "--no-start").returncode == 0
    topology.write_text(topology.read_text().replace('name = "edge"\n', f'name = "edge"\n'
                                                     f'tcp_listener_address = "127.0.0.1:{port}"\n', 1))
    try:
        windows.wine.run("sc", "start", "ockam-edge", timeout=30)
        wait_until(lambda: windows.service_state("edge") == {
            "state": STOPPED, "win32_exit_code": ERROR_SERVICE_SPECIFIC_ERROR, "service_exit_code": 1},
            timeout=30, what="STOPPED with the service-specific exit code 1")
    finally:
        busy.close()
    assert f"127.0.0.1:{port}" in Path(windows.home, "nodes", "edge", "node.log").read_text()


def test_state_and_topology_under_program_files(windows, linux_relay, echo_target):
    """`C:\\Program Files\\...`: spaces in the service's command line, its state and its topology."""
    program_files = windows.wine.path / "drive_c" / "Program Files" / "ockam test"
    windows.use_home(program_files / "state dir")
    edge_topology(program_files / "edge config.toml", echo_target, relay=linux_relay.relay_port)
    installed = windows.run("service", "install", "--config", r"C:\Program Files\ockam test\edge config.toml",
                            "--output", "json", check=False)
    windows.services.append("edge")
    assert installed.returncode == 0, installed.stderr
    assert '"home": "C:\\\\Program Files\\\\ockam test\\\\state dir"' in installed.stdout
    live = wait_until(lambda: connect(linux_relay.inlet()), timeout=15, what="the client's inlet")
    assert echoes(live, b"from Program Files")
    live.close()
    assert Path(program_files, "state dir", "nodes", "edge", "control.json").exists()
    assert windows("node", "reload", "edge") == "Reloaded node edge: 0 started, 0 stopped, 2 unchanged"
    assert windows("node", "logs", "edge") == r"C:\Program Files\ockam test\state dir\nodes\edge\node.log"
