"""The data-path sockets: our listener and connect, on loopback."""

import errno
import logging
import socket as stdsocket

import gevent
import pytest

from appliance.node import sockets
from appliance.node.errors import RouteError
from appliance.node.sockets import Listener
from appliance.node.tcp import connect_tcp
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
