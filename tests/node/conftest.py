"""In-process nodes on loopback, all in this test's gevent hub, shut down at teardown."""

from __future__ import annotations

import gevent
import pytest
from gevent import socket
from gevent.server import StreamServer

from appliance.node.runtime import NodeRuntime
from appliance.wire.address import Address
from appliance.wire.framing import PROTOCOL_VERSION_BYTE, encode_frame_header
from appliance.wire.relay import RelayReply, encode_request, relay_address
from appliance.wire.transport import TransportMessage, encode_frame
from tests.helpers import echo_until_eof, recv_exactly


@pytest.fixture
def make_node():
    runtimes = []
    listeners = {}

    def make(name: str, listen: bool = True, **options) -> NodeRuntime:
        runtime = NodeRuntime(name, node_lookup=listeners.get, **options)
        if listen:
            listeners[name] = runtime.listen("127.0.0.1:0").address
        runtimes.append(runtime)
        return runtime

    make.listener = listeners.get
    yield make
    for runtime in runtimes:
        runtime.shutdown()


@pytest.fixture
def tcp_service():
    """tcp_service(handler) -> the HOST:PORT of a TCP service on loopback that calls
    handler(sock, address) for each connection, in a greenlet of its own; stopped at teardown."""
    servers = []

    def start(handler) -> str:
        server = StreamServer(("127.0.0.1", 0), handler)
        server.start()
        servers.append(server)
        return f"127.0.0.1:{server.address[1]}"

    yield start
    for server in servers:
        server.stop(timeout=0)


@pytest.fixture
def echo_server(tcp_service):
    """A TCP echo server on loopback; its host:port."""
    def echo(sock, _addr):
        try:
            echo_until_eof(sock)
        except OSError:
            pass
        finally:
            sock.close()

    return tcp_service(echo)


class CountingSink:
    """A TCP service that reads all it is sent, counting the bytes (`received`), and answers
    `reply` to a client that finished sending."""

    def __init__(self, reply: bytes = b""):
        self.received = 0
        self.reply = reply
        self.server = StreamServer(("127.0.0.1", 0), self._serve)
        self.server.start()
        self.hostport = f"127.0.0.1:{self.server.address[1]}"

    def _serve(self, sock, _addr) -> None:
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                self.received += len(data)
            if self.reply:
                sock.sendall(self.reply)
        except OSError:
            pass
        finally:
            sock.close()


@pytest.fixture
def counting_sink():
    """counting_sink(reply=b"") -> a started CountingSink, stopped at teardown."""
    sinks = []

    def make(reply: bytes = b"") -> CountingSink:
        sinks.append(CountingSink(reply))
        return sinks[-1]

    yield make
    for sink in sinks:
        sink.server.stop(timeout=0)


class StallingProxy:
    """The network between two nodes: a TCP proxy in front of `target` (host:port) whose one
    direction (`toward_target`, or back) stalls while `stalled` is set: what it read that way
    waits, nothing more is read, so the sender's kernel buffers fill."""

    def __init__(self, target: str, toward_target: bool):
        self.target = target
        self.toward_target = toward_target
        self.stalled = False
        self.server = StreamServer(("127.0.0.1", 0), self._connection)
        self.server.start()
        self.port = self.server.address[1]

    def _connection(self, client, _addr) -> None:
        host, port = self.target.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        gevent.spawn(self._pipe, upstream, client, not self.toward_target)
        self._pipe(client, upstream, self.toward_target)

    def _pipe(self, src, dst, stallable: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                while stallable and self.stalled:  # what was read waits; nothing more is read
                    gevent.sleep(0.05)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            dst.close()

    def stop(self) -> None:
        self.stalled = False
        self.server.stop(timeout=0)


@pytest.fixture
def stalling_proxy():
    """stalling_proxy(target, toward_target) -> a started StallingProxy, stopped at teardown."""
    proxies = []

    def make(target: str, toward_target: bool = True) -> StallingProxy:
        proxies.append(StallingProxy(target, toward_target))
        return proxies[-1]

    yield make
    for proxy in proxies:
        proxy.stop()


@pytest.fixture
def stallable_secure_portal(make_node, echo_server, stalling_proxy):
    """Node a's inlet reaches b's echo outlet over a secure channel through a proxy whose a -> b
    direction stalls while `proxy.stalled` is set; one client has already had "hello" echoed.
    Yields (a, proxy, inlet bind address, that client's socket)."""
    return secure_portal_through_a_stalling_proxy(make_node, echo_server, stalling_proxy)


def secure_portal_through_a_stalling_proxy(make_node, echo_server, stalling_proxy, **options) -> tuple:
    """stallable_secure_portal, with `options` for both nodes (a clock, say)."""
    a, b = make_node("a", **options), make_node("b", **options)
    proxy = stalling_proxy(make_node.listener("b"))
    b.control.outlet_create(echo_server)
    inlet = a.control.inlet_create("127.0.0.1:0", f"/ip4/127.0.0.1/tcp/{proxy.port}/secure/api/service/outlet")
    client = connect(inlet["bind_address"])
    client.sendall(b"hello")
    assert recv_exactly(client, 5) == b"hello"
    return a, proxy, inlet["bind_address"], client


class RawPeer:
    """A peer that writes frames by hand: what a stranger with TCP access can send."""

    def __init__(self, hostport: str, source: str | None = None):
        self.sock = connect(hostport, source)
        self.sock.sendall(PROTOCOL_VERSION_BYTE)
        assert recv_exactly(self.sock, 1) == PROTOCOL_VERSION_BYTE

    def send(self, onward, return_route, payload: bytes) -> None:
        self.sock.sendall(encode_frame(tuple(onward), tuple(return_route), payload))

    def send_body(self, body: bytes) -> None:
        self.sock.sendall(encode_frame_header(len(body)) + body)

    def receive(self) -> TransportMessage:
        """The next message that is not a heartbeat."""
        while True:
            header = recv_exactly(self.sock, 4)
            if len(header) < 4:
                raise ConnectionError("the node closed the connection")
            length = int.from_bytes(header, "big")
            if length:
                return TransportMessage.decode(recv_exactly(self.sock, length))

    def register(self, name: str, secret: bytes = b"", via=()) -> RelayReply:
        """Register relay `name` (at the node, or through the route `via`); its reply."""
        self.send(tuple(map(Address.local, via)) + (Address.local("forwarding_service"),), (Address.local("me"),),
                  encode_request(relay_address(name), secret))
        return RelayReply.decode(self.receive().payload)

    def echo(self, text: bytes) -> bytes:
        self.send((Address.local("echo"),), (Address.local("me"),), text)
        return self.receive().payload


def connect(hostport: str, source: str | None = None):
    host, port = hostport.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10, source_address=(source, 0) if source else None)


__all__ = ["CountingSink", "RawPeer", "StallingProxy", "connect", "recv_exactly", "gevent"]
