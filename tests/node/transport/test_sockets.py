"""The data-path sockets: our listener and connect, on loopback."""

import errno
import gc
import logging
import os
import socket as stdsocket
import struct

import gevent
import pytest

from appliance.node.transport import sockets
from appliance.node.errors import RouteError
from appliance.node.transport.sockets import Listener
from appliance.node.transport.tcp import connect_tcp
from appliance.wire.multiaddr import Tcp


def _echo_once(sock, _peer):
    sock.sendall(sock.recv(100))
    sock.close()


def test_listener_hands_over_no_delay_sockets_and_stop_frees_the_port_at_once():
    listener = Listener("127.0.0.1", 0, _echo_once)
    host, port = listener.address
    client = sockets.connect(host, port, timeout=5)
    assert client.sock.getsockopt(stdsocket.IPPROTO_TCP, stdsocket.TCP_NODELAY)
    client.sendall(b"ping")
    assert client.recv(100) == b"ping"
    client.close()
    listener.stop()
    with pytest.raises(OSError):
        stdsocket.create_connection((host, port), timeout=1)


def test_connect_resolves_names_and_reports_refusals_in_one_line():
    listener = Listener("127.0.0.1", 0, _echo_once)
    port = listener.address[1]
    sock = connect_tcp(Tcp("localhost", port))
    sock.sendall(b"x")
    assert sock.recv(1) == b"x"
    listener.stop()
    with pytest.raises(RouteError, match=rf"^cannot connect to 127\.0\.0\.1:{port}: Connection refused$"):
        connect_tcp(Tcp("127.0.0.1", port))


class _WindowsStyleSocket(stdsocket.socket):
    """A socket whose non-blocking connect says what Windows says: WSAEWOULDBLOCK, not EINPROGRESS."""

    def connect_ex(self, address):
        code = super().connect_ex(address)
        return errno.EWOULDBLOCK if code == errno.EINPROGRESS else code


@pytest.mark.pure_only("sockets._connected")
def test_a_connect_under_way_is_waited_for_however_the_system_says_it(monkeypatch):
    listener = Listener("127.0.0.1", 0, _echo_once)
    monkeypatch.setattr(sockets, "CONNECT_PENDING", frozenset((errno.EINPROGRESS, errno.EWOULDBLOCK)))  # Windows'
    monkeypatch.setattr(sockets._stdsocket, "socket", _WindowsStyleSocket)
    monkeypatch.setattr(sockets, "_connected", lambda sock: False)  # the handshake is still on its way
    client = sockets.connect(*listener.address, timeout=5)
    assert isinstance(client.sock, _WindowsStyleSocket)
    client.sendall(b"ping")
    assert client.recv(100) == b"ping"
    client.close()
    listener.stop()


def test_keepalive_takes_its_timings_in_one_ioctl_where_windows_offers_it(monkeypatch):
    asked = []

    class WindowsSocket:
        def ioctl(self, control, value):
            asked.append((control, value))

        def setsockopt(self, level, option, value):
            asked.append((level, option, value))

    monkeypatch.setattr(sockets, "_SIO_KEEPALIVE_VALS", 0x98000004)
    sockets.tune(WindowsSocket())
    assert asked == [(stdsocket.IPPROTO_TCP, stdsocket.TCP_NODELAY, 1), (0x98000004, (1, 300_000, 75_000))]


class _FailingOnce:
    """A listening socket whose first accept fails as when the process is out of descriptors."""

    def __init__(self, sock):
        self.sock, self.failed = sock, False

    def accept(self):
        if not self.failed:
            self.failed = True
            raise OSError(errno.EMFILE, "Too many open files")
        return self.sock.accept()

    def close(self):
        self.sock.close()


def test_listener_pauses_when_out_of_descriptors_and_then_accepts_again(caplog, monkeypatch):
    monkeypatch.setattr(sockets, "ACCEPT_RETRY", 0.05)
    listener = Listener("127.0.0.1", 0, _echo_once)
    listener._sock = _FailingOnce(listener._sock)
    with caplog.at_level(logging.WARNING):
        client = sockets.connect(*listener.address, timeout=5)
        client.sendall(b"again")
        with gevent.Timeout(5):
            assert client.recv(100) == b"again"
    assert "Too many open files" in caplog.text
    listener.stop()


def test_listener_takes_a_bounded_number_of_connections_per_loop_turn(monkeypatch):
    monkeypatch.setattr(sockets, "MAX_ACCEPTS", 2)
    handled = []
    listener = Listener("127.0.0.1", 0, lambda sock, peer: handled.append(sock))
    listener._watcher.stop()  # we turn the crank ourselves
    clients = [stdsocket.create_connection(listener.address) for _ in range(5)]
    listener._accept_all()
    gevent.sleep(0)
    assert len(handled) == 2, "the rest wait for the next turn of the loop"
    listener._accept_all()
    listener._accept_all()
    gevent.sleep(0)
    assert len(handled) == 5
    for sock in handled:
        sock.close()
    for client in clients:
        client.close()
    listener.stop()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_a_connect_that_is_killed_while_waiting_leaves_nothing_open():
    server = stdsocket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)  # never accepted: once its backlog is full, handshakes hang
    fillers = []
    for _ in range(4):
        filler = stdsocket.socket()
        filler.setblocking(False)
        filler.connect_ex(server.getsockname())
        fillers.append(filler)
    gevent.sleep(0.1)
    gc.collect()  # sockets other tests left to the collector must not close while we count
    before = _open_fds()
    attempt = gevent.spawn(sockets.connect, *server.getsockname(), 30)
    gevent.sleep(0.3)
    if attempt.ready():
        pytest.skip("this kernel completed the handshake anyway")
    attempt.kill()
    gevent.sleep(0.05)
    assert _open_fds() == before
    for sock in fillers + [server]:
        sock.close()


def test_a_peer_that_resets_before_it_is_greeted_leaves_no_trace(make_node, capfd):
    node = make_node("n")
    host, port = node.tcp.listeners[next(iter(node.tcp.listeners))].address.rsplit(":", 1)
    for _ in range(20):
        sock = stdsocket.create_connection((host, int(port)))
        sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST at once
    gevent.sleep(0.3)
    assert not node.tcp.connections
    assert "Traceback" not in capfd.readouterr().err
