"""The chaos proxy itself, against a loopback echo server (and the sha256 server)."""

import os
import socket
import time

import pytest

from tests.chaos.conftest import echo_once
from tests.helpers import recv_exactly
from tests.helpers import free_port, wait_until

pytestmark = pytest.mark.timeout(60)


def connect(proxy, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(proxy.address, timeout=timeout)


def round_trip(sock, payload: bytes) -> float:
    start = time.monotonic()
    sock.sendall(payload)
    assert recv_exactly(sock, len(payload), timeout=10) == payload
    return time.monotonic() - start


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_passthrough_echoes_and_counts(chaos_proxy, echo_target, backend):
    proxy = chaos_proxy(echo_target, backend=backend)
    payload = os.urandom(300_000)
    with connect(proxy) as sock:
        round_trip(sock, payload)
        assert proxy.accepted == 1 and proxy.active == 1
    stats = wait_until(lambda: (s := proxy.stats())["active"] == 0 and s, what="the proxy to close its side")
    assert stats["bytes_up"] == stats["bytes_down"] == len(payload)
    assert stats["accepted"] == stats["closed"] == 1 and stats["resets"] == 0


def test_half_close_is_forwarded(chaos_proxy, sha256_server):
    proxy = chaos_proxy(sha256_server.port)
    n, seed = 1_000_003, "half-close"
    assert proxy.stats()["mode"] == {"blackhole": False, "rate": None, "delay": 0.0}
    assert sha256_server.fetch(n, seed, address=proxy.address) == (n, sha256_server.expected(n, seed))
    with connect(proxy) as sock:  # the server's FIN after the stream reaches the client
        sock.sendall(b"GET 10 x\n")
        assert len(recv_exactly(sock, 10, timeout=10)) == 10
        assert sock.recv(1) == b""


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_blackhole_holds_bytes_without_closing_then_delivers_them(chaos_proxy, echo_target, backend):
    proxy = chaos_proxy(echo_target, backend=backend)
    with connect(proxy) as sock:
        round_trip(sock, b"before")
        proxy.blackhole()
        before = proxy.stats()
        sock.sendall(b"into the void")
        sock.settimeout(0.5)
        with pytest.raises(socket.timeout):  # neither data nor EOF nor RST
            sock.recv(100)
        with connect(proxy) as late:  # a connection made during the blackhole: accepted, silent
            late.sendall(b"late")
            late.settimeout(0.3)
            with pytest.raises(socket.timeout):
                late.recv(100)
            during = proxy.stats()
            assert (during["bytes_up"], during["bytes_down"]) == (before["bytes_up"], before["bytes_down"])
            assert during["active"] == 2 and during["closed"] == 0
            proxy.passthrough()  # what the link held now arrives, in order, as TCP would deliver it
            assert recv_exactly(late, 4, timeout=5) == b"late"
        assert recv_exactly(sock, 13, timeout=5) == b"into the void"
        round_trip(sock, b"after")


def test_throttle_limits_each_direction(chaos_proxy, echo_target):
    proxy = chaos_proxy(echo_target)
    with connect(proxy) as sock:
        assert round_trip(sock, os.urandom(16 * 1024)) < 1.0  # unthrottled: fast
        proxy.throttle(8000)
        elapsed = round_trip(sock, os.urandom(16 * 1024))  # 16 KiB each way at 8000 B/s
        assert 1.5 <= elapsed < 6.0, elapsed
        proxy.passthrough()
        assert round_trip(sock, os.urandom(64 * 1024)) < 1.0


def test_delay_adds_one_way_latency_and_keeps_order(chaos_proxy, echo_target):
    proxy = chaos_proxy(echo_target)
    with connect(proxy) as sock:
        base = min(round_trip(sock, b"x") for _ in range(3))
        proxy.delay(0.2)
        delayed = round_trip(sock, b"y")
        assert delayed >= 0.4 and delayed < base + 2.0, (base, delayed)  # 0.2 s each way
        expected = b""
        for i in range(40):  # change the delay mid-stream: bytes still arrive in order
            if i == 20:
                proxy.delay(0.0)
            message = f"<{i}>".encode()
            sock.sendall(message)
            expected += message
        assert recv_exactly(sock, len(expected), timeout=5) == expected


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_reset_all_resets_every_connection_and_accepts_new_ones(chaos_proxy, echo_target, backend):
    proxy = chaos_proxy(echo_target, backend=backend)
    socks = [connect(proxy) for _ in range(3)]
    try:
        for sock in socks:
            round_trip(sock, b"hi")
        assert proxy.reset_all() == 3
        for sock in socks:
            sock.settimeout(5)
            with pytest.raises(ConnectionResetError):
                sock.recv(10)
        assert proxy.stats()["resets"] == 3 and proxy.active == 0
        assert echo_once(proxy.address, b"again") == (b"again", None)
    finally:
        for sock in socks:
            sock.close()


def test_refused_target_resets_the_client_and_retarget_fixes_it(chaos_proxy, echo_target):
    proxy = chaos_proxy(free_port())  # nothing listens there
    got, error = echo_once(proxy.address, b"hello", timeout=5)
    assert got == b"" and error and ("ConnectionResetError" in error or error == "EOF"), error
    assert proxy.stats()["refused"] == 1
    proxy.retarget(("127.0.0.1", echo_target))
    assert echo_once(proxy.address, b"hello") == (b"hello", None)


def test_only_loopback(chaos_proxy):
    with pytest.raises(ValueError):
        chaos_proxy(("192.0.2.1", 80))
