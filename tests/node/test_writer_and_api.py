"""Backpressure in the socket writer, and the control API's refusals."""

import json
import os
import socket as stdsocket

import gevent
import pytest
from gevent import socket

from appliance.node.api import ControlServer
from appliance.node.errors import ConnectionClosed
from appliance.node.sockets import HubSocket, SocketClosed
from appliance.node.writer import Batch, SocketWriter


def _pair():
    ours, theirs = stdsocket.socketpair()
    return HubSocket(ours), socket.socket(fileno=theirs.detach())


def test_writer_blocks_a_fast_producer_instead_of_buffering():
    ours, theirs = _pair()
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
    ours, _theirs = _pair()
    writer = SocketWriter(ours, high_water=1024)
    producer = gevent.spawn(lambda: [writer.write(b"y" * 4096) for _ in range(10000)])
    gevent.sleep(0.1)
    writer.close()
    producer.join(timeout=5)
    assert producer.ready() and producer.exception is not None


class _RecordingSocket:
    """Takes at most `per_send` bytes per send and records each send; full after `capacity`."""

    def __init__(self, per_send=1 << 30, capacity=1 << 30):
        self.sends, self.per_send, self.capacity = [], per_send, capacity

    def send(self, data) -> int:
        n = min(len(data), self.per_send, self.capacity - sum(map(len, self.sends)))
        if n:
            self.sends.append(bytes(data[:n]))
        return n

    def wait_writable(self) -> None:
        gevent.sleep(0.001)
        self.capacity += 1 << 20


def test_writes_are_sent_at_once_outside_a_batch_and_together_inside_one():
    sock = _RecordingSocket()
    writer = SocketWriter(sock)
    writer.write(b"a")
    writer.write(b"b")
    assert sock.sends == [b"a", b"b"]
    with Batch():
        for part in (b"c", b"d", b"e"):
            writer.write(part)
    assert sock.sends == [b"a", b"b"], "a batch waits for the end of the loop turn"
    gevent.sleep(0)
    assert sock.sends == [b"a", b"b", b"cde"]
    assert writer.flush(timeout=1)


def test_a_socket_that_takes_little_at_a_time_still_gets_everything_in_order():
    sock = _RecordingSocket(per_send=1000, capacity=5000)
    writer = SocketWriter(sock, high_water=10_000)
    data = os.urandom(200_000)
    producer = gevent.spawn(lambda: [writer.write(data[i:i + 7000]) for i in range(0, len(data), 7000)])
    producer.join(timeout=10)
    assert producer.successful()
    assert writer.flush(timeout=10)
    assert b"".join(sock.sends) == data


class _BrokenSocket(_RecordingSocket):
    def send(self, data) -> int:
        raise ConnectionResetError(104, "Connection reset by peer")


def test_a_failed_flush_closes_the_writer_and_tells_its_owner_once():
    errors = []
    writer = SocketWriter(_BrokenSocket(), on_error=errors.append)
    with Batch():
        writer.write(b"lost")
    gevent.sleep(0)  # the flush at the end of the turn fails
    assert writer.closed
    with pytest.raises(ConnectionClosed):
        writer.write(b"after")
    gevent.sleep(0.01)
    assert len(errors) == 1


def test_closing_a_hub_socket_wakes_its_reader_with_an_error():
    ours, _theirs = _pair()
    reader = gevent.spawn(ours.recv, 100)
    gevent.sleep(0.05)
    ours.close()
    reader.join(timeout=2)
    assert isinstance(reader.exception, SocketClosed)


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
