"""`ockam node run` as a service manager sees it: sd_notify, watchdog, graceful stop, JSON logs."""

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import ockam_command
from tests.helpers import free_port, wait_until


def write_topology(path: Path, inlet: int, target: int) -> Path:
    path.write_text(f'[node]\nname = "svc"\n\n[[outlets]]\nto = "127.0.0.1:{target}"\n\n'
                    f'[[inlets]]\nfrom = "127.0.0.1:{inlet}"\nto = "/service/outlet"\n')
    return path


@pytest.fixture
def notify_socket(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(10)
    yield path, sock
    sock.close()


def read_states(sock, until: str, limit: int = 50) -> list:
    states = []
    for _ in range(limit):
        states += sock.recv(4096).decode().split("\n")
        if until in states:
            return states
    raise AssertionError(f"no {until} in {states}")


def start(ockam, path, **env):
    return subprocess.Popen(ockam_command() + ["node", "run", str(path)], env={**ockam.env, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_notify_ready_watchdog_reloading_stopping(ockam, tmp_path, notify_socket, echo_target):
    path, sock = notify_socket
    topology = write_topology(tmp_path / "svc.toml", free_port(), echo_target)
    proc = start(ockam, topology, NOTIFY_SOCKET=path, WATCHDOG_USEC="400000")
    try:
        assert "READY=1" in read_states(sock, "READY=1")
        assert "WATCHDOG=1" in read_states(sock, "WATCHDOG=1")  # pinged every 0.2 s
        proc.send_signal(signal.SIGHUP)
        assert "RELOADING=1" in read_states(sock, "RELOADING=1")
        proc.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in read_states(sock, "STOPPING=1")
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sigterm_lets_open_portal_connections_finish(ockam, tmp_path, echo_target):
    inlet = free_port()
    topology = write_topology(tmp_path / "svc.toml", inlet, echo_target)
    proc = start(ockam, topology)
    try:
        live = wait_until(lambda: _connect(inlet), timeout=15, what="the inlet")
        live.sendall(b"before")
        assert live.recv(100) == b"before"
        proc.send_signal(signal.SIGTERM)
        wait_until(lambda: _connect(inlet) is None, what="the inlet to stop accepting")
        live.sendall(b"during the grace period")
        assert live.recv(100) == b"during the grace period"
        assert proc.poll() is None, "the node waits for the open connection"
        started = time.monotonic()
        live.close()
        assert proc.wait(timeout=15) == 0
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()


def test_json_log_lines(ockam, tmp_path, echo_target):
    topology = write_topology(tmp_path / "svc.toml", free_port(), echo_target)
    proc = start(ockam, topology, OCKAM_LOG_FORMAT="json")
    log = Path(ockam.home, "nodes", "svc", "node.log")
    wait_until(lambda: log.exists() and "is up" in log.read_text(), timeout=15, what="the node to start")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    assert any(e["message"].startswith("node svc is up") for e in entries)
    assert any(e["message"] == "node svc stopped" for e in entries)
    assert all(json.loads(line) for line in proc.stderr.read().splitlines())


def _connect(port: int):
    try:
        return socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError:
        return None


