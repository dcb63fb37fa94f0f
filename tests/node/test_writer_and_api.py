"""Backpressure in the socket writer, and the control API's refusals."""

import json
import os

import gevent
from gevent import socket

from appliance.node.api import ControlServer
from appliance.node.writer import SocketWriter


def test_writer_blocks_a_fast_producer_instead_of_buffering():
    ours, theirs = socket.socketpair()
    writer = SocketWriter(ours, high_water=64 * 1024)
    chunk = b"x" * 16384
    written = []

    def produce():
        for _ in range(640):  # 10 MiB
            writer.write(chunk)
            written.append(1)

    producer = gevent.spawn(produce)
    gevent.sleep(0.3)
    assert not producer.ready(), "the producer should be blocked by a reader that does not read"
    assert writer._size <= 64 * 1024 + len(chunk)
    total = 0
    while total < 640 * len(chunk):
        total += len(theirs.recv(1 << 20))
    producer.join(timeout=10)
    assert len(written) == 640
    writer.close()


def test_writer_close_releases_blocked_producers():
    ours, _theirs = socket.socketpair()
    writer = SocketWriter(ours, high_water=1024)
    producer = gevent.spawn(lambda: [writer.write(b"y" * 4096) for _ in range(10000)])
    gevent.sleep(0.1)
    writer.close()
    producer.join(timeout=5)
    assert producer.ready() and producer.exception is not None


def _request(path, raw: bytes) -> dict:
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(path)
    sock.sendall(raw)
    data = sock.makefile("rb").readline()
    sock.close()
    return json.loads(data)


def test_control_api_refuses_what_it_does_not_offer(make_node, tmp_path):
    a = make_node("a")
    path = str(tmp_path / "api.sock")
    server = ControlServer(a, path)
    try:
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"
        assert _request(path, b'{"op": "node.show"}\n')["result"]["name"] == "a"
        assert "unknown operation" in _request(path, b'{"op": "shutdown"}\n')["error"]
        assert "unknown operation" in _request(path, b'{"op": "__init__"}\n')["error"]
        assert "malformed" in _request(path, b"not json\n")["error"]
        assert "bad arguments" in _request(path, b'{"op": "relay.delete", "args": {"x": 1}}\n')["error"]
        assert "no relay" in _request(path, b'{"op": "relay.delete", "args": {"name": "z"}}\n')["error"]
    finally:
        server.close()
