"""Stream sockets driven by the gevent hub directly, for the data path.

gevent's cooperative socket re-implements the socket API in Python (timeouts, retries, a
`getsockopt` per `sendall`); a wake-up through it costs about twice what one through the hub
does. A portal message crosses six sockets per request and reply, so every socket that
carries portal or node-to-node traffic is a `HubSocket`: the plain non-blocking socket, one
read and one write watcher, and a greenlet waiting on a watcher only when the kernel has
nothing for it. Closing wakes a waiting greenlet with `SocketClosed`, as gevent's own does.
"""

from __future__ import annotations

import errno
import socket as _stdsocket

from gevent import get_hub

KEEPALIVE = (300, 75, 2)  # idle, interval, probes - as Ockam
SMALL_READ = 64 * 1024


class SocketClosed(OSError):
    """The socket was closed (by another greenlet) while this one was waiting on it."""

    def __init__(self):
        super().__init__(errno.EBADF, "socket closed")


class HubSocket:
    __slots__ = ("sock", "_hub", "_read", "_write", "_drained", "_filled", "closed")

    def __init__(self, sock: _stdsocket.socket):
        sock.setblocking(False)
        self.sock = sock
        self._hub = get_hub()
        self._read = self._hub.loop.io(sock.fileno(), 1)
        self._write = self._hub.loop.io(sock.fileno(), 2)
        self._drained = False
        self._filled = False
        self.closed = False

    @classmethod
    def adopt(cls, gevent_socket) -> "HubSocket":
        """Take over a connected gevent socket (accepted by a StreamServer, or dialled)."""
        family, kind = gevent_socket.family, gevent_socket.type
        sock = _stdsocket.socket(family, kind, 0, gevent_socket.detach())
        tune(sock)
        return cls(sock)

    def recv(self, size: int) -> bytes:
        """Up to `size` bytes, waiting until there is at least one; b"" at end of stream.

        Reads ask for SMALL_READ bytes unless the last one filled its buffer (bulk data):
        a buffer of glibc's mmap threshold (128 KiB) or more is mapped and unmapped on every
        call, which costs more than the whole receive of a small message.
        After a read that did not fill its buffer the kernel had nothing more, so the next
        call waits before it reads: a request/response peer has sent nothing new yet, and a
        failed receive costs a system call and an exception."""
        if self._drained:
            self._wait_readable()
        want = size if self._filled else min(size, SMALL_READ)
        while True:
            try:
                data = self.sock.recv(want)
            except BlockingIOError:
                self._wait_readable()
                continue
            self._filled = len(data) == want
            self._drained = not self._filled
            return data

    def _wait_readable(self) -> None:
        if self.closed:
            raise SocketClosed()
        self._hub.wait(self._read)

    def send(self, data) -> int:
        """As much of `data` as the kernel takes now (0 when its buffer is full); never waits."""
        try:
            return self.sock.send(data)
        except BlockingIOError:
            return 0

    def wait_writable(self) -> None:
        if self.closed:
            raise SocketClosed()
        self._hub.wait(self._write)

    def close(self) -> None:
        """Close now, or once the greenlets waiting on it have been woken with SocketClosed."""
        if self.closed:
            return
        self.closed = True
        self._hub.cancel_waits_close_and_then((self._read, self._write), SocketClosed, self.sock.close)


def tune(sock) -> None:
    """No Nagle delay (writers batch per loop turn themselves) and keepalive for dead peers."""
    sock.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)
    sock.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_KEEPALIVE, 1)
    for opt, value in zip(("TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT"), KEEPALIVE):
        if hasattr(_stdsocket, opt):
            sock.setsockopt(_stdsocket.IPPROTO_TCP, getattr(_stdsocket, opt), value)
