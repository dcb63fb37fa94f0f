"""In-process nodes on loopback, all in this test's gevent hub, shut down at teardown."""

import gevent
import pytest
from gevent import socket
from gevent.server import StreamServer

from appliance.node.runtime import NodeRuntime
from tests.helpers import echo_until_eof


@pytest.fixture
def make_node():
    runtimes = []
    listeners = {}

    def make(name: str, listen: bool = True, **options) -> NodeRuntime:
        runtime = NodeRuntime(name, node_lookup=listeners.get, **options)
        if listen:
            listeners[name] = runtime.tcp.listen("127.0.0.1:0").address
        runtimes.append(runtime)
        return runtime

    make.listener = listeners.get
    yield make
    for runtime in runtimes:
        runtime.shutdown()


@pytest.fixture
def echo_server():
    """A TCP echo server on loopback; yields its host:port."""
    def echo(sock, _addr):
        try:
            echo_until_eof(sock)
        except OSError:
            pass
        finally:
            sock.close()

    server = StreamServer(("127.0.0.1", 0), echo)
    server.start()
    yield f"127.0.0.1:{server.address[1]}"
    server.stop(timeout=0)


def connect(hostport: str):
    host, port = hostport.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def recv_exactly(sock, n: int) -> bytes:
    chunks = []
    while n:
        data = sock.recv(min(n, 65536))
        if not data:
            break
        chunks.append(data)
        n -= len(data)
    return b"".join(chunks)


__all__ = ["connect", "recv_exactly", "gevent"]
