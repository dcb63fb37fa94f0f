"""Stream sockets driven by the gevent hub directly, for the data path.

gevent's cooperative socket re-implements the socket API in Python (timeouts, retries, a
`getsockopt` per `sendall`); a wake-up through it costs about twice what one through the hub
does. A portal message crosses six sockets per request and reply, so every socket that
carries portal or node-to-node traffic is a `HubSocket`: the plain non-blocking socket, one
read and one write watcher, and a greenlet waiting on a watcher only when the kernel has
nothing for it. Closing wakes a waiting greenlet with `SocketClosed`, as gevent's own does.

The data path reads without a greenlet at all: `read_by(callback)` has the hub call back
whenever the socket is readable (`recv_now` then reads what is there), so a message that
crosses a node costs no switch between greenlets, and an idle connection holds no stack.
"""

from __future__ import annotations

import errno
import logging
import os
import socket as _stdsocket
import struct
import sys
from typing import Any, Final

import gevent
from gevent import get_hub
from gevent.socket import getaddrinfo

from appliance.node.transport.closed import SocketClosed

try:  # SIOCOUTQ, the kernel's unsent bytes: Linux (and the BSDs); not on Windows
    import fcntl
    import termios
    _SIOCOUTQ: int | None = termios.TIOCOUTQ
except (ImportError, AttributeError):
    _SIOCOUTQ = None

log = logging.getLogger(__name__)

KEEPALIVE: Final = (300, 75, 2)  # idle, interval, probes - as Ockam
SMALL_READ: Final = 64 * 1024
BACKLOG: Final = 1024
MAX_ACCEPTS = 100  # per loop turn
OPTIONS_INHERITED: Final = sys.platform.startswith("linux")  # accepted sockets take the listener's options
LINGER_RESET: Final = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST
ACCEPT_RETRY = 0.1  # seconds to wait after accept failed (out of file descriptors)
# a non-blocking connect under way: EINPROGRESS; on Windows WSAEWOULDBLOCK (errno.EWOULDBLOCK
# there; on Linux that is EAGAIN, which a connect answers when no local port is free)
CONNECT_PENDING = frozenset((errno.EINPROGRESS, errno.EWOULDBLOCK) if os.name == "nt" else (errno.EINPROGRESS,))
_REUSE_OPTION: Any = getattr(_stdsocket, "SO_EXCLUSIVEADDRUSE", None) if os.name == "nt" else _stdsocket.SO_REUSEADDR
_SIO_KEEPALIVE_VALS = getattr(_stdsocket, "SIO_KEEPALIVE_VALS", None) if os.name == "nt" else None
_WINSOCK_ERRORS = getattr(_stdsocket, "errorTab", {})  # Windows only: WSAE... code -> text
_GATHERS: Final = hasattr(_stdsocket.socket, "sendmsg")  # not on Windows


class HubSocket:
    """One connected socket; at most one greenlet (or one hub callback) reads it, and one
    greenlet writes it, at a time."""

    __slots__ = ("sock", "_hub", "_read", "_write", "_drained", "_bulk", "_on_readable", "closed")

    def __init__(self, sock: _stdsocket.socket):
        sock.setblocking(False)
        self.sock = sock
        self._hub = get_hub()
        self._read = self._hub.loop.io(sock.fileno(), 1)
        self._write = self._hub.loop.io(sock.fileno(), 2)
        self._drained = False
        self._bulk = False  # the last read brought SMALL_READ bytes or more
        self._on_readable: Any = None  # read_by's callback: the socket is read in the hub, not by a greenlet
        self.closed = False

    def recv(self, size: int) -> bytes:
        """Up to `size` bytes, waiting until there is at least one; b"" at end of stream.

        Reads ask for SMALL_READ bytes unless the last one brought that much (bulk data):
        a buffer of glibc's mmap threshold (128 KiB) or more is mapped and unmapped on every
        call, which costs more than the whole receive of a small message.
        After a read that did not fill its buffer the kernel had nothing more, so the next
        call waits before it reads: a request/response peer has sent nothing new yet, and a
        failed receive costs a system call and an exception."""
        if self._drained:
            self._wait(self._read)
        while True:
            want = self._read_size(size)
            data = self.recv_now(size)
            if data is None:
                self._wait(self._read)
                continue
            self._drained = len(data) < want
            return data

    def _read_size(self, size: int) -> int:
        return size if self._bulk else min(size, SMALL_READ)

    def recv_now(self, size: int) -> bytes | None:
        """What the kernel holds, up to `size` bytes (b"" at end of stream), or None when it
        holds nothing; sized as `recv` explains."""
        try:
            data = self.sock.recv(self._read_size(size))
        except BlockingIOError:
            return None
        self._bulk = len(data) >= SMALL_READ
        return data

    def read_by(self, callback) -> None:
        """From now on the hub calls `callback()` whenever the socket is readable, until
        `pause_reading` or `close`. The callback runs in the hub: it must never wait."""
        self._on_readable = callback
        self.resume_reading()

    def pause_reading(self) -> None:
        self._read.stop()

    def resume_reading(self) -> None:
        if not self.closed:
            self._read.start(self._on_readable)

    @property
    def reading(self) -> bool:
        """A `read_by` callback is armed: a reset by the peer will be heard at once."""
        return self._on_readable is not None and self._read.active

    def _wait(self, watcher) -> None:
        if self.closed:
            raise SocketClosed()
        self._hub.wait(watcher)

    def send(self, data) -> int:
        """As much of `data` as the kernel takes now (0 when its buffer is full); never waits."""
        try:
            return self.sock.send(data)
        except BlockingIOError:
            return 0

    def send_parts(self, parts: list) -> int:
        """As much of the parts, in order, as the kernel takes now, in one system call: a
        gathering sendmsg, or where there is none (Windows) one send of their join."""
        if not _GATHERS:
            return self.send(b"".join(parts))
        try:
            return self.sock.sendmsg(parts)
        except BlockingIOError:
            return 0

    def unsent(self) -> int | None:
        """Bytes the kernel holds that the peer has not acknowledged yet (Linux: SIOCOUTQ),
        or None where that cannot be asked: with `sent`, how a slow reader's progress shows."""
        if _SIOCOUTQ is None or self.closed:
            return None
        try:
            return struct.unpack("i", fcntl.ioctl(self.sock.fileno(), _SIOCOUTQ, b"\0\0\0\0"))[0]
        except (OSError, ValueError):  # ValueError: closed under us (fileno -1), seen with libuv
            return None

    def wait_writable(self) -> None:
        self._wait(self._write)

    def sendall(self, data) -> None:
        """Send everything, waiting as needed (for simple services; portals use SocketWriter)."""
        view = memoryview(data)
        while view:
            sent = self.send(view)  # not inside the slice: mypyc 2.4 evaluates a slice's start twice
            view = view[sent:]
            if view:
                self.wait_writable()

    def reset(self) -> None:
        """Close with a reset (RST) instead of an orderly end: the peer must not take a
        stream cut short for a complete one."""
        if not self.closed:
            try:
                self.sock.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_LINGER, LINGER_RESET)
            except OSError:
                pass
        self.close()

    def close(self) -> None:
        """Close now, or once the greenlets waiting on it have been woken with SocketClosed."""
        if self.closed:
            return
        self.closed = True
        if self._on_readable is not None:  # read in the hub: no greenlet waits on reading
            self._read.close()
            waited_on: tuple = (self._write,)
        else:
            waited_on = (self._read, self._write)
        self._hub.cancel_waits_close_and_then(waited_on, SocketClosed, self.sock.close)


def addresses(host: str, port: int, passive: bool = False, kind: int = _stdsocket.SOCK_STREAM) -> list:
    """(family, sockaddr) for host:port (TCP, or `kind`); an IP literal without asking a
    resolver, as gevent resolves names on a thread pool, which costs more than a whole
    loopback connection."""
    for family in (_stdsocket.AF_INET, _stdsocket.AF_INET6):
        try:
            _stdsocket.inet_pton(family, host)
        except OSError:
            continue
        return [(family, (host, port))]
    flags = _stdsocket.AI_PASSIVE if passive else 0
    return [(info[0], info[4]) for info in getaddrinfo(host, port, 0, kind, 0, flags)]


def connect(host: str, port: int, timeout: float) -> HubSocket:
    """A connected, tuned TCP socket (each address of a name tried in turn, `timeout` for
    each), or the last OSError/gaierror. Nothing is left open when it fails or is killed."""
    error: OSError = OSError(errno.EHOSTUNREACH, "no address")
    for family, address in addresses(host, port):
        sock = None
        try:
            sock = HubSocket(_stdsocket.socket(family, _stdsocket.SOCK_STREAM))
            code = sock.sock.connect_ex(address)
            if code in CONNECT_PENDING:
                if not _connected(sock.sock):
                    with gevent.Timeout(timeout, OSError(errno.ETIMEDOUT, "timed out")):
                        sock.wait_writable()
                code = sock.sock.getsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_ERROR)
            if code:
                raise OSError(code, _strerror(code))
            tune(sock.sock)
            return sock
        except OSError as exc:
            error = exc
        except BaseException:
            if sock is not None:
                sock.close()
            raise
        if sock is not None:
            sock.close()
    raise error


def _strerror(code: int) -> str:
    """What an error code means: Windows' socket codes (WSAE...) are not in os.strerror."""
    return _WINSOCK_ERRORS.get(code) or os.strerror(code)


def _connected(sock) -> bool:
    """A loopback handshake is usually over when connect() returns EINPROGRESS: asking
    costs one system call, waiting costs a turn of the loop."""
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


def tune(sock) -> None:
    """No Nagle delay (our writers batch by themselves) and TCP keepalive (as Ockam's), so
    that a peer that vanishes without a word is found out. A socket whose peer is already
    gone cannot be tuned; its first read says so."""
    try:
        sock.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)
        _keepalive(sock)
    except OSError as exc:
        log.debug("cannot tune a socket: %s", exc)


def _keepalive(sock) -> None:
    """Keepalive after KEEPALIVE's idle seconds, then a probe every interval. Windows sets
    both in one ioctl, which every version has (its TCP_KEEP* options are Windows 10 1709+
    only, and Wine refuses them), and sends its own fixed number of probes (10)."""
    idle, interval, probes = KEEPALIVE
    if _SIO_KEEPALIVE_VALS is not None:
        sock.ioctl(_SIO_KEEPALIVE_VALS, (1, idle * 1000, interval * 1000))
        return
    sock.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_KEEPALIVE, 1)
    for opt, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", interval), ("TCP_KEEPCNT", probes)):
        if hasattr(_stdsocket, opt):
            sock.setsockopt(_stdsocket.IPPROTO_TCP, getattr(_stdsocket, opt), value)


class Listener:
    """Accepts TCP connections and runs `handle(HubSocket, (host, port))` for each in its
    own greenlet, with the sockets tuned as `tune` does (on Linux they inherit it from the
    listening socket: no system calls per connection).

    Accepting is a watcher callback in the hub, not a waiting greenlet, so `stop` closes
    the listening socket at once, even from a loop that is about to end. It takes at most
    MAX_ACCEPTS connections per loop turn, so a flood cannot starve the greenlets."""

    def __init__(self, host: str, port: int, handle):
        family, address = addresses(host, port, passive=True)[0]
        sock = _stdsocket.socket(family, _stdsocket.SOCK_STREAM)
        try:
            # a port in TIME_WAIT may be reused; Windows' SO_REUSEADDR would also let us bind a
            # port another process listens on, so there it is SO_EXCLUSIVEADDRUSE instead
            sock.setsockopt(_stdsocket.SOL_SOCKET, _REUSE_OPTION, 1)
            tune(sock)
            sock.bind(address)
            sock.listen(BACKLOG)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self.address = sock.getsockname()[:2]
        self._sock = sock
        self._handle = handle
        self._loop = get_hub().loop
        self._watcher = self._loop.io(sock.fileno(), 1)
        self._retry: Any = None
        self._watcher.start(self._accept_all)

    def _accept_all(self) -> None:
        for _ in range(MAX_ACCEPTS):  # the watcher fires again next turn for the rest
            try:
                conn, peer = self._sock.accept()
            except BlockingIOError:
                return
            except OSError as exc:  # EMFILE and friends: pause, so the backlog waits and we do not spin
                log.warning("cannot accept a connection on %s:%s: %s", *self.address, exc.strerror)
                self._watcher.stop()
                self._retry = self._loop.timer(ACCEPT_RETRY)
                self._retry.start(self._watcher.start, self._accept_all)
                return
            if not OPTIONS_INHERITED:
                tune(conn)
            gevent.spawn(self._handle, HubSocket(conn), peer[:2])

    def stop(self) -> None:
        """Stop accepting and close the socket; connections already accepted are not touched."""
        if self._retry is not None:
            self._retry.close()
        self._watcher.close()
        self._sock.close()
