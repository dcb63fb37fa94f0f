"""The socket writer (never blocks, bounded, reports progress), and the control API's refusals."""

import json
import os
import socket as stdsocket

import gevent
import pytest
from gevent import socket

from appliance.node.control.api import ControlServer, bind_unix
from appliance.node.errors import ConnectionClosed
from appliance.node.transport.sockets import HubSocket, SocketClosed
from appliance.node.transport.writer import Batch, SocketWriter

pytestmark = pytest.mark.timeout(60)  # a writer that loses track of its queue waits for ever


def _pair():
    ours, theirs = stdsocket.socketpair()
    return HubSocket(ours), socket.socket(fileno=theirs.detach())


def test_writer_never_blocks_and_fails_once_the_peer_stops_reading():
    ours, _theirs = _pair()  # nobody reads _theirs
    failures = []
    writer = SocketWriter(ours, on_error=failures.append, limit=256 * 1024)
    chunk = b"x" * 16384
    with pytest.raises(ConnectionClosed, match="peer is not reading"):
        for _ in range(10_000):  # far more than the kernel buffers and the limit together
            writer.write(chunk)
    assert writer.closed
    gevent.sleep(0)  # the owner hears of it in a greenlet of its own
    assert len(failures) == 1 and "peer is not reading" in str(failures[0])


def test_writer_reports_every_byte_the_kernel_took():
    ours, theirs = _pair()
    taken = []
    writer = SocketWriter(ours, on_sent=taken.append)
    data = os.urandom(4 << 20)  # more than the socket buffers: part of it is queued and drained
    writer.write(data)
    received = 0
    while received < len(data):
        received += len(theirs.recv(1 << 20))
    assert writer.flush(timeout=10)
    assert sum(taken) == len(data)
    writer.close()


class _RecordingSocket:
    """Takes at most `per_send` bytes per send and records each send; full after `capacity`."""

    def __init__(self, per_send=1 << 30, capacity=1 << 30):
        self.sends, self.per_send, self.capacity = [], per_send, capacity

    def send(self, data) -> int:
        n = min(len(data), self.per_send, self.capacity - sum(map(len, self.sends)))
        if n:
            self.sends.append(bytes(data[:n]))
        return n

    def send_parts(self, parts) -> int:
        """One send of several chunks, recorded as their join (HubSocket gathers them)."""
        return self.send(b"".join(parts))

    def wait_writable(self) -> None:
        gevent.sleep(0.001)
        self.capacity += 1 << 20


def next_turn() -> None:
    """Let the loop finish this turn and poll for I/O: the writers' next turn begins."""
    gevent.sleep(0.001)


def test_a_turn_s_first_write_is_sent_at_once_and_the_rest_of_the_turn_or_a_batch_together_at_its_end():
    sock = _RecordingSocket()
    writer = SocketWriter(sock)
    next_turn()
    writer.write(b"a")
    writer.write(b"b")
    writer.write(b"c")
    assert sock.sends == [b"a"], "more writes in the same turn of the loop wait for its end"
    next_turn()
    assert sock.sends == [b"a", b"bc"]
    writer.write(b"d")  # a new turn: at once
    assert sock.sends == [b"a", b"bc", b"d"]
    next_turn()
    with Batch():
        for part in (b"e", b"f", b"g"):
            writer.write(part)
    assert sock.sends == [b"a", b"bc", b"d"], "a batch waits for the end of the loop turn"
    next_turn()
    assert sock.sends == [b"a", b"bc", b"d", b"efg"]
    assert writer.flush(timeout=1)


def test_a_socket_that_takes_little_at_a_time_still_gets_everything_in_order():
    sock = _RecordingSocket(per_send=1000, capacity=5000)
    writer = SocketWriter(sock)
    data = os.urandom(200_000)
    producer = gevent.spawn(lambda: [writer.write(data[i:i + 7000]) for i in range(0, len(data), 7000)])
    producer.join(timeout=10)
    assert producer.successful()
    assert writer.flush(timeout=10)
    assert b"".join(sock.sends) == data


def test_a_gathered_send_the_kernel_takes_part_of_leaves_exactly_the_rest_queued():
    sock = _RecordingSocket(per_send=5)
    writer = SocketWriter(sock)
    with Batch():
        for part in (b"abc", b"defg", b"hi"):
            writer.write(part)
    next_turn()  # one send of the three: five bytes go, "fg" and "hi" wait for the socket
    assert writer.flush(timeout=1)
    assert sock.sends == [b"abcde", b"fghi"] and writer.sent == 9


@pytest.mark.parametrize("per_send, sends", [
    (2, [b"ab", b"cd", b"ef", b"g"]),  # the kernel stops inside the first part
    (3, [b"abc", b"def", b"g"]),  # at the end of the first: the second waits whole
    (5, [b"abcde", b"fg"]),  # inside the second
    (7, [b"abcdefg"]),  # takes both
])
def test_a_write_in_two_parts_goes_out_in_one_send_and_what_is_left_after_it(per_send, sends):
    sock = _RecordingSocket(per_send=per_send)
    writer = SocketWriter(sock)
    next_turn()
    writer.write(b"abc", memoryview(b"defg"))
    assert sock.sends == sends[:1]
    assert writer.flush(timeout=1)
    assert sock.sends == sends and writer.sent == 7


def test_chunks_queued_past_the_kernel_s_buffers_arrive_whole_and_in_order_over_a_real_socket():
    ours, theirs = _pair()
    writer = SocketWriter(ours)
    parts = [os.urandom(size) for size in (1, 70_000, 3, 131_072, 5000) * 20]  # bytes and, once cut, views
    with Batch():
        for part in parts:
            writer.write(part)
    expected = b"".join(parts)
    received = bytearray()
    while len(received) < len(expected):
        received += theirs.recv(1 << 20)
    assert received == expected
    assert writer.flush(timeout=10) and writer.sent == len(expected)


def test_more_chunks_than_one_gathering_send_may_carry_go_out_in_several():
    ours, theirs = _pair()
    writer = SocketWriter(ours)
    parts = [bytes((i % 256,)) for i in range(3000)]  # Linux takes at most 1024 parts in one sendmsg
    with Batch():
        for part in parts:
            writer.write(part)
    received = bytearray()
    while len(received) < len(parts):
        received += theirs.recv(1 << 16)
    assert received == b"".join(parts) and writer.flush(timeout=10) and not writer.closed


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
    server = ControlServer(a.control.table(), bind_unix(path), path)
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
