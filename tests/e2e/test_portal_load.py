"""Bulk and concurrent traffic through inlet -> relay -> outlet, each node its own process."""

import hashlib
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

BULK = 100 * 1024 * 1024
CHUNK = 256 * 1024


def recv_sha256(sock, n):
    """Read n bytes, hashing them on the way; returns the sha256 hex digest."""
    digest = hashlib.sha256()
    while n:
        data = sock.recv(min(n, 1 << 20))
        if not data:
            raise AssertionError(f"connection ended {n} bytes early")
        digest.update(data)
        n -= len(data)
    return digest.hexdigest()


def send_all(sock, data):
    view = memoryview(data)
    for i in range(0, len(data), CHUNK):
        sock.sendall(view[i:i + CHUNK])


@pytest.fixture
def relay_portal(ockam):
    """n1 (inlet) -> n2 (relay) <- n3 (outlet, dialled out); returns a function making a portal."""
    ockam("node", "create", "n2", "--tcp-listener-address=127.0.0.1:0")  # a relay
    ockam("node", "create", "n3")
    ockam("relay", "create", "n3", "--at", "/node/n2", "--to", "/node/n3")
    ockam("node", "create", "n1")

    def make(target_port: int) -> tuple:
        ockam("tcp-outlet", "create", "--at", "n3", "--from", "/service/outlet", "--to", f"127.0.0.1:{target_port}")
        inlet = ockam("tcp-inlet", "create", "--at", "n1", "--from", "127.0.0.1:0",
                      "--to", "/node/n2/service/forward_to_n3/service/outlet")
        host, port = inlet.rsplit(":", 1)
        return host, int(port)

    return make


def test_100_mb_both_ways_with_matching_sha256(relay_portal, threaded_server):
    upstream = os.urandom(BULK)
    downstream = os.urandom(BULK)
    server_saw = {}
    server_done = threading.Event()

    def target(conn):
        writer = threading.Thread(target=send_all, args=(conn, downstream))
        writer.start()
        server_saw["sha256"] = recv_sha256(conn, BULK)
        writer.join()
        server_done.set()

    server = threaded_server(target)
    inlet = relay_portal(server.port)
    with socket.create_connection(inlet, timeout=120) as sock:
        writer = threading.Thread(target=send_all, args=(sock, upstream))
        writer.start()
        client_saw = recv_sha256(sock, BULK)
        writer.join()
        assert server_done.wait(120), f"the target did not receive all 100 MB: {server.errors}"
    assert not server.errors
    assert server_saw["sha256"] == hashlib.sha256(upstream).hexdigest()
    assert client_saw == hashlib.sha256(downstream).hexdigest()


def test_200_concurrent_portal_connections(relay_portal, echo_target):
    inlet = relay_portal(echo_target)

    def one(i: int) -> bool:
        message = (f"connection {i:03d} ".encode()) * 500
        with socket.create_connection(inlet, timeout=60) as sock:
            sock.sendall(message)
            return recv_sha256(sock, len(message)) == hashlib.sha256(message).hexdigest()

    barrier_free = ThreadPoolExecutor(max_workers=200)
    results = list(barrier_free.map(one, range(200), timeout=120))
    barrier_free.shutdown()
    assert results == [True] * 200
