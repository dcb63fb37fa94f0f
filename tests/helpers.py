"""Test helpers: free ports, bounded waits, in-process nodes and small servers."""

from __future__ import annotations

import socket
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Poll until predicate() is truthy; fail the test after timeout instead of hanging."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        _sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _sleep(seconds: float) -> None:
    try:
        import gevent

        gevent.sleep(seconds)
    except ImportError:  # pragma: no cover
        time.sleep(seconds)


def recv_exactly(sock, n: int, timeout: float | None = None) -> bytes:
    """n bytes from `sock`; fewer only when the peer closes first or `timeout` seconds (for
    all of them; None: the socket's own) run out."""
    deadline = None if timeout is None else time.monotonic() + timeout
    chunks, missing = [], n
    while missing:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
        try:
            data = sock.recv(min(missing, 65536))
        except socket.timeout:
            break
        if not data:
            break
        chunks.append(data)
        missing -= len(data)
    return b"".join(chunks)


def echo_until_eof(sock) -> None:
    """Send back everything received until the peer closes (works for gevent and std sockets)."""
    while True:
        data = sock.recv(65536)
        if not data:
            return
        sock.sendall(data)


def port_of(hostport: str) -> int:
    """The port of a HOST:PORT."""
    return int(hostport.rsplit(":", 1)[1])
