"""The paths traffic can take to a target port, each a context manager yielding a local port.

Every path forwards 127.0.0.1:<yielded port> to 127.0.0.1:<target>; the same client then
measures each one, so only the path differs between rows.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def ockam_command() -> list[str]:
    script = Path(sys.executable).parent / "ockam"
    return [str(script)] if script.exists() else [sys.executable, "-m", "appliance"]


@contextlib.contextmanager
def direct(target: int):
    yield target


@contextlib.contextmanager
def socat(target: int):
    if shutil.which("socat") is None:
        raise RuntimeError("socat is not installed")
    port = free_port()
    proc = subprocess.Popen(["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
                             f"TCP:127.0.0.1:{target}"], stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def ockam_relay_portal(target: int, secure: bool = False):
    """inlet (n1) -> relay (n2) <- outlet (n3, dialled out): three node processes; with
    `secure`, end-to-end encrypted n1 <-> n3 through the relay."""
    home = tempfile.mkdtemp(prefix="ockam-bench-", dir="/tmp")
    env = {**os.environ, "OCKAM_HOME": home}

    def ockam(*args: str) -> str:
        return subprocess.run(ockam_command() + list(args), env=env, check=True,
                              capture_output=True, text=True).stdout.strip()

    port = free_port()
    try:
        ockam("node", "create", "n2")
        ockam("node", "create", "n3")
        ockam("relay", "create", "n3", "--at", "/node/n2", "--to", "n3")
        ockam("node", "create", "n1")
        ockam("tcp-outlet", "create", "--at", "n3", "--to", f"127.0.0.1:{target}")
        ockam("tcp-inlet", "create", "--at", "n1", "--from", f"127.0.0.1:{port}",
              "--to", f"/node/n2/service/forward_to_n3{'/secure/api' if secure else ''}/service/outlet")
        yield port
    finally:
        subprocess.run(ockam_command() + ["node", "delete", "--all"], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


PATHS = {
    "direct": direct,
    "socat": socat,
    "ockam portal via relay (plain)": ockam_relay_portal,
    "ockam portal via relay (encrypted)": functools.partial(ockam_relay_portal, secure=True),
}
