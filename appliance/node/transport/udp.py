"""UDP sockets read in the hub: each datagram is handed to a callback as it comes, and a
send the kernel has no room for is dropped, not queued (UDP may lose it anyway)."""

from __future__ import annotations

import logging
import socket as _stdsocket

import gevent

from appliance.node.errors import AddressInUse, RouteError
from appliance.node.transport.sockets import addresses
from appliance.wire.multiaddr import Tcp

log = logging.getLogger(__name__)

MAX_DATAGRAM = 65_535
READS_PER_WAKE = 64  # then others' I/O gets a turn; the rest waits in the kernel's buffer


class UdpSocket:
    """`on_datagram(data, address)` for every datagram; `send`/`sendto` never wait."""

    def __init__(self, sock: _stdsocket.socket, on_datagram):
        sock.setblocking(False)
        self.sock = sock
        self._on_datagram = on_datagram
        self._watcher = gevent.get_hub().loop.io(sock.fileno(), 1)
        self._watcher.start(self._readable)
        self.closed = False

    @property
    def address(self) -> str:
        return Tcp(*self.sock.getsockname()[:2]).hostport

    def _readable(self) -> None:
        for _ in range(READS_PER_WAKE):
            try:
                data, address = self.sock.recvfrom(MAX_DATAGRAM)
            except BlockingIOError:
                return
            except OSError as exc:  # an ICMP error for an earlier send (the target's port is closed)
                log.debug("UDP socket %s: %s", self.address, exc)
                continue
            self._on_datagram(data, address)
            if self.closed:
                return

    def sendto(self, data: bytes, address) -> bool:
        """False when it was not sent (the kernel's buffer is full, or the socket failed)."""
        try:
            self.sock.sendto(data, address)
            return True
        except OSError:
            return False

    def send(self, data: bytes) -> bool:
        try:
            self.sock.send(data)
            return True
        except OSError:
            return False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._watcher.stop()
            self._watcher.close()
            self.sock.close()


def bind_udp(target: Tcp, on_datagram) -> UdpSocket:
    """A UDP socket bound to `target` (an inlet's HOST:PORT; a host name is looked up)."""
    family, address = _address(target, passive=True)
    sock = _stdsocket.socket(family, _stdsocket.SOCK_DGRAM)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise AddressInUse(f"cannot listen on UDP {target.hostport}: {exc.strerror or exc}") from None
    return UdpSocket(sock, on_datagram)


def connect_udp(target: Tcp, on_datagram) -> UdpSocket:
    """A UDP socket of its own for one flow to `target` (its source port is the flow's); a host
    name is looked up, so call it where a wait is allowed."""
    family, address = _address(target)
    sock = _stdsocket.socket(family, _stdsocket.SOCK_DGRAM)
    try:
        sock.connect(address)
    except OSError as exc:
        sock.close()
        raise RouteError(f"cannot reach UDP {target.hostport}: {exc.strerror or exc}") from None
    return UdpSocket(sock, on_datagram)


def _address(target: Tcp, passive: bool = False) -> tuple:
    """(family, sockaddr) of `target`, as TCP connections find theirs (an IP literal asks no
    resolver; a name is looked up by gevent's resolver, which does not stop the loop)."""
    try:
        return addresses(target.host, target.port, passive, _stdsocket.SOCK_DGRAM)[0]
    except OSError as exc:
        raise RouteError(f"cannot resolve {target.host}: {exc.strerror or exc}") from None
