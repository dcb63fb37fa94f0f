"""UDP sockets read in the hub: each datagram is handed to a callback as it comes, and a
send the kernel has no room for is dropped, not queued (UDP may lose it anyway)."""

from __future__ import annotations

import ipaddress
import logging
import socket as _stdsocket

import gevent
from gevent import socket as cooperative

from appliance.node.errors import AddressInUse, RouteError
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


def _family(host: str) -> int:
    try:
        return _stdsocket.AF_INET6 if ipaddress.ip_address(host).version == 6 else _stdsocket.AF_INET
    except ValueError:
        return _stdsocket.AF_INET


def bind_udp(target: Tcp, on_datagram) -> UdpSocket:
    """A UDP socket bound to `target` (an inlet's HOST:PORT; a host name is looked up)."""
    host = target.host
    if _family(host) == _stdsocket.AF_INET and not _is_ip(host):
        host = _lookup(target)[0]
    sock = _stdsocket.socket(_family(host), _stdsocket.SOCK_DGRAM)
    try:
        sock.bind((host, target.port))
    except OSError as exc:
        sock.close()
        raise AddressInUse(f"cannot listen on UDP {target.hostport}: {exc.strerror or exc}") from None
    return UdpSocket(sock, on_datagram)


def connect_udp(target: Tcp, on_datagram) -> UdpSocket:
    """A UDP socket of its own for one flow to `target` (its source port is the flow's); a host
    name is looked up, so call it where a wait is allowed."""
    address = (target.host, target.port) if _is_ip(target.host) else _lookup(target)
    sock = _stdsocket.socket(_family(address[0]), _stdsocket.SOCK_DGRAM)
    try:
        sock.connect(address)
    except OSError as exc:
        sock.close()
        raise RouteError(f"cannot reach UDP {target.hostport}: {exc.strerror or exc}") from None
    return UdpSocket(sock, on_datagram)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _lookup(target: Tcp) -> tuple:
    try:
        # gevent's: the node is not monkey-patched, and a lookup must not stop its loop
        return cooperative.getaddrinfo(target.host, target.port, type=_stdsocket.SOCK_DGRAM)[0][4][:2]
    except OSError as exc:
        raise RouteError(f"cannot resolve {target.host}: {exc.strerror or exc}") from None
