"""Chaos fixtures: controllable proxies, checkable byte streams, and killing real nodes.

The real-CLI fixtures (`ockam`, `echo_target`, `threaded_server`) are the end-to-end ones,
imported from tests/e2e/conftest.py. The plain helpers below (kill9, create_node,
echo_once, recovery_time, fetch_sha256, ...) are imported by the test modules:
`from tests.chaos.conftest import kill9`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import signal
import socket
import time
from pathlib import Path

import pytest

from appliance.host.process import alive

from tests.chaos.proxies import ChaosProxy
from tests.e2e.conftest import echo_target, ockam, threaded_server  # noqa: F401 - fixtures reused here
from tests.helpers import wait_until

# --- proxies ---------------------------------------------------------------------------------


@pytest.fixture
def chaos_proxy():
    """A factory: chaos_proxy(target_port or (host, port), **ChaosProxy options) -> started proxy.
    Every proxy it made is stopped at teardown."""
    proxies: list[ChaosProxy] = []

    def make(target, **options) -> ChaosProxy:
        address = ("127.0.0.1", target) if isinstance(target, int) else tuple(target)
        proxy = ChaosProxy(address, **options)
        proxies.append(proxy)
        return proxy.start()

    yield make
    for proxy in proxies:
        proxy.stop()


# --- a server of checkable byte streams ------------------------------------------------------

CHUNK = 64 * 1024
MAX_REQUEST = 1 << 30


def pseudo_random_chunks(n: int, seed: str):
    """n bytes that depend only on (seed, position), 64 KiB at a time."""
    for k in range((n + CHUNK - 1) // CHUNK):
        chunk = random.Random(f"{seed}:{k}").randbytes(CHUNK)
        yield chunk[:min(CHUNK, n - k * CHUNK)]


@functools.lru_cache(maxsize=64)
def expected_sha256(n: int, seed: str) -> str:
    digest = hashlib.sha256()
    for chunk in pseudo_random_chunks(n, seed):
        digest.update(chunk)
    return digest.hexdigest()


def fetch_sha256(address, n: int, seed: str, timeout: float = 20.0) -> tuple[int, str]:
    """Ask a sha256_server (directly or through a portal) for `GET n seed`; return
    (bytes received, their sha256) once n bytes came, the stream ended, or `timeout` passed."""
    with socket.create_connection(tuple(address), timeout=timeout) as sock:
        sock.sendall(f"GET {n} {seed}\n".encode())
        return read_sha256(sock, n, timeout)


def read_sha256(sock, n: int, timeout: float, digest=None, received: int = 0) -> tuple[int, str]:
    """Read until `received` reaches n, the stream ends or `timeout` passes, hashing into
    `digest` (a new one by default); return (bytes received, sha256 hex)."""
    deadline = time.monotonic() + timeout
    digest = digest or hashlib.sha256()
    while received < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            data = sock.recv(min(CHUNK, n - received))
        except socket.timeout:
            break
        if not data:
            break
        digest.update(data)
        received += len(data)
    return received, digest.hexdigest()


class Sha256Server:
    """Answers `GET <n> <seed>\\n` with pseudo_random_chunks(n, seed), then closes."""

    def __init__(self, server):
        self.server = server
        self.port = server.port
        self.address = ("127.0.0.1", server.port)
        self.hostport = f"127.0.0.1:{server.port}"
        self.requests = 0

    def handle(self, conn) -> None:
        conn.settimeout(30)
        line = b""
        for _ in range(128):  # a request line is short
            byte = conn.recv(1)
            if not byte or byte == b"\n":
                break
            line += byte
        parts = line.split()
        if len(parts) != 3 or parts[0] != b"GET" or not parts[1].isdigit() or int(parts[1]) > MAX_REQUEST:
            conn.sendall(b"ERR expected: GET <n> <seed>\n")
            return
        self.requests += 1
        for chunk in pseudo_random_chunks(int(parts[1]), parts[2].decode(errors="replace")):
            conn.sendall(chunk)

    expected = staticmethod(expected_sha256)

    def fetch(self, n: int, seed: str, address=None, timeout: float = 20.0) -> tuple[int, str]:
        return fetch_sha256(address or self.address, n, seed, timeout)


@pytest.fixture
def sha256_server(threaded_server) -> Sha256Server:  # noqa: F811 - the imported fixture
    holder: list[Sha256Server] = []
    server = threaded_server(lambda conn: holder[0].handle(conn))
    holder.append(Sha256Server(server))
    return holder[0]


# --- echo through a route --------------------------------------------------------------------


def echo_once(address, payload: bytes, timeout: float = 2.0) -> tuple[bytes, str | None]:
    """Open a new connection, send payload, read as many bytes back: (what came, why it stopped
    short or None)."""
    deadline = time.monotonic() + timeout
    got = b""
    try:
        with socket.create_connection(tuple(address), timeout=timeout) as sock:
            sock.sendall(payload)
            while len(got) < len(payload):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return got, "timed out"
                sock.settimeout(remaining)
                data = sock.recv(len(payload) - len(got))
                if not data:
                    return got, "EOF"
                got += data
    except OSError as exc:
        return got, f"{type(exc).__name__}: {exc}"
    return got, None


def recovery_time(address, within: float = 5.0, attempt_timeout: float = 2.0, size: int = 32 * 1024,
                  what: str = "a new connection to echo") -> float:
    """Seconds until a new connection to `address` echoes `size` random bytes exactly; fails
    the test after `within` seconds with the last attempt's outcome."""
    start = time.monotonic()
    deadline = start + within
    outcome = {"attempts": 0, "last": "no attempt"}

    def attempt() -> bool:
        outcome["attempts"] += 1
        payload = os.urandom(size)
        remaining = max(0.05, min(attempt_timeout, deadline - time.monotonic()))
        got, error = echo_once(address, payload, remaining)
        if got == payload:
            return True
        outcome["last"] = error or f"{len(got)} bytes back, not the ones sent"
        return False

    try:
        wait_until(attempt, timeout=within, interval=0.05, what=what)
    except AssertionError:
        raise AssertionError(f"{what}: no exact echo within {within:g} s after {outcome['attempts']} "
                             f"attempts; last: {outcome['last']}") from None
    return time.monotonic() - start


# --- real nodes --------------------------------------------------------------------------------


def node_info(ockam, name: str) -> dict:  # noqa: F811 - `ockam` here is the CLI object
    return json.loads(Path(ockam.home, "nodes", name, "node.json").read_text())


def node_pid(ockam, name: str) -> int:  # noqa: F811
    pid = node_info(ockam, name).get("pid")
    if not pid:
        raise AssertionError(f"node {name} has no pid in its node.json")
    return int(pid)


def create_node(ockam, name: str, port: int | None = None, *options: str) -> dict:  # noqa: F811
    """`ockam node create NAME [--tcp-listener-address 127.0.0.1:PORT] OPTIONS`; its node.json."""
    args = ["node", "create", name] + ([f"--tcp-listener-address=127.0.0.1:{port}"] if port else [])
    ockam(*args, *options)
    return node_info(ockam, name)


def _is_node_process(pid: int, name: str) -> bool:
    """Guard against pid reuse: the process must be `... node create|run ... NAME ...`."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return alive(pid)  # no /proc: trust node.json
    return b"node" in argv and (b"create" in argv or b"run" in argv) and name.encode() in argv


def kill9(ockam, name: str, timeout: float = 10.0) -> int:  # noqa: F811
    """SIGKILL node `name` (pid from $OCKAM_HOME/nodes/NAME/node.json) and wait until it is
    gone; its state directory stays, as after a crash. Returns the pid."""
    pid = node_pid(ockam, name)
    if not alive(pid) or not _is_node_process(pid, name):
        raise AssertionError(f"node {name} (pid {pid}) is not running")
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not alive(pid), timeout=timeout, what=f"node {name} (pid {pid}) to die")
    return pid


# --- recovery times, listed at the end of the run ------------------------------------------------

RECOVERY_TIMES: list[tuple[str, float]] = []


@pytest.fixture
def record_recovery(request):
    """record_recovery(seconds): print it and list it, with the test's id, in the run's summary."""
    def record(seconds: float, label: str = "") -> None:
        name = request.node.nodeid.split("::", 1)[-1] + (f" {label}" if label else "")
        print(f"recovery: {name}: {seconds:.2f} s")
        RECOVERY_TIMES.append((name, seconds))

    return record


def pytest_terminal_summary(terminalreporter):
    if RECOVERY_TIMES:
        terminalreporter.section("chaos recovery times")
        for name, seconds in RECOVERY_TIMES:
            terminalreporter.write_line(f"{seconds:6.2f} s  {name}")
