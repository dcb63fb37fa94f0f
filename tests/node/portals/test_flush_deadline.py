"""After the service closed, a client that keeps reading, however slowly, gets the whole
download: the flush deadline is on lack of progress (FLUSH_IDLE), not on the whole flush
(which reset slow mobile readers). The constant is shortened here (0.5 s) and the reader's
rate scaled with it (1 MiB/s)."""

import socket as stdsocket

import gevent
import pytest
from gevent import socket

from appliance.node.portals import portal

SIZE = 8 << 20


def test_a_slow_but_steady_reader_gets_the_whole_download(make_node, monkeypatch, tcp_service):
    monkeypatch.setattr(portal, "FLUSH_IDLE", 0.5)  # 30 s in production

    def serve(sock, _addr):
        sock.recv(100)
        sock.sendall(b"d" * SIZE)
        sock.close()  # HTTP/1.0 style: the response, then close
    service = tcp_service(serve)
    a, b = make_node("a"), make_node("b")
    b.control.outlet_create(service)
    host, port = a.control.inlet_create("127.0.0.1:0", "/node/b/service/outlet")["bind_address"].rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_RCVBUF, 64 * 1024)  # keep the test short
    sock.settimeout(5)
    sock.connect((host, int(port)))
    sock.sendall(b"GET\n")
    received = 0
    while received < SIZE:  # a steady 1 MiB/s reader: never idle, never stalled
        try:
            data = sock.recv(64 * 1024)
        except ConnectionResetError:
            pytest.fail(f"reset after {received} of {SIZE} bytes while the client was reading")
        if not data:
            break
        received += len(data)
        gevent.sleep(1 / 16)
    assert received == SIZE
