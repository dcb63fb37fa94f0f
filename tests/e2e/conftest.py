"""End-to-end fixtures: the real `ockam` CLI in subprocesses, each test with its own OCKAM_HOME."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from appliance.host.process import self_command
from tests.helpers import echo_until_eof, wait_until


def ockam_command() -> list[str]:
    """$OCKAM_BIN (e.g. the frozen binary), else the venv's console script."""
    if os.environ.get("OCKAM_BIN"):
        return [os.environ["OCKAM_BIN"]]
    script = Path(sys.executable).parent / "ockam"
    return [str(script)] if script.exists() else self_command()


class Ockam:
    def __init__(self, home: str):
        self.home = home
        self.env = {**os.environ, "OCKAM_HOME": home}

    def run(self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60, cwd=None):
        proc = subprocess.run(ockam_command() + list(args), env=self.env, capture_output=True,
                              text=True, input=input, timeout=timeout, cwd=cwd)
        if check and proc.returncode != 0:
            raise AssertionError(f"ockam {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def command(self, *args: str) -> list[str]:
        return ockam_command() + list(args)

    def __call__(self, *args: str, **kwargs) -> str:
        return self.run(*args, **kwargs).stdout.strip()

    def node_pids(self) -> list[int]:
        pids = []
        for info in Path(self.home, "nodes").glob("*/node.json"):
            import json

            pid = json.loads(info.read_text()).get("pid")
            if pid:
                pids.append(pid)
        return pids


@pytest.fixture
def ockam():
    # short path: Unix socket paths are limited to ~100 bytes
    home = tempfile.mkdtemp(prefix="ockam-", dir="/tmp")
    cli = Ockam(home)
    yield cli
    pids = cli.node_pids()
    cli.run("node", "delete", "--all", check=False)
    for pid in pids:  # nothing may outlive the test
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def http_server():
    """`python -m http.server` on loopback; yields a function that starts one on a port."""
    procs = []

    def start(port: int, directory: str | None = None):
        proc = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
                                cwd=directory or tempfile.gettempdir(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        wait_until(lambda: _port_open(port), what=f"http.server on {port}")
        return proc

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class ThreadedServer:
    """A loopback TCP server with a thread per connection running `handler(sock)`."""

    def __init__(self, handler):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.errors: list = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        try:
            self.handler(conn)
        except Exception as exc:  # noqa: BLE001 - recorded for the test to assert on
            self.errors.append(exc)
        finally:
            conn.close()

    def close(self):
        self.sock.close()


class Impostor:
    """A process that now listens on a port a stale control.json names: it records what a
    client sends it (`heard`) and answers the nonce with something that is no proof."""

    def __init__(self):
        self.heard: list[bytes] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                self.heard.append(conn.recv(4096))
                conn.sendall(b"not a proof\n")
                try:
                    self.heard.append(conn.recv(4096))
                except OSError:
                    pass

    def heard_only_nonces(self, token: str) -> bool:
        """Something came, and nothing but 32-byte nonces (never the token or a request)."""
        return bool(self.heard) and all(len(chunk) in (0, 33) for chunk in self.heard) \
            and not any(token.encode() in chunk for chunk in self.heard)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def echo_target(threaded_server) -> int:
    """The port of a loopback TCP echo server."""
    return threaded_server(echo_until_eof).port


@pytest.fixture
def threaded_server():
    servers = []

    def start(handler) -> ThreadedServer:
        server = ThreadedServer(handler)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


class Tap:
    """A loopback TCP proxy that records every byte it forwards, both ways."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.captured = bytearray()
        self._lock = threading.Lock()
        self.server = ThreadedServer(self._relay)
        self.port = self.server.port

    def _relay(self, conn):
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        done = threading.Event()

        def pump(src, dst):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    with self._lock:
                        self.captured += data
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                done.set()

        threading.Thread(target=pump, args=(upstream, conn), daemon=True).start()
        pump(conn, upstream)
        done.wait()
        upstream.close()


@pytest.fixture
def tap():
    taps = []

    def start(target_port: int) -> Tap:
        t = Tap(target_port)
        taps.append(t)
        return t

    yield start
    for t in taps:
        t.server.close()
