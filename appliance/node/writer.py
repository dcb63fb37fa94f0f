"""A socket writer that coalesces small writes and pushes back on fast producers.

Producers call `write`; a dedicated greenlet drains the queue with one `sendall` per batch.
When more than `high_water` bytes wait, `write` blocks the producing greenlet until the
socket catches up: a slow reader slows its sender instead of growing our memory.
"""

from __future__ import annotations

import logging

import gevent
from gevent.event import Event

from appliance.node.errors import ConnectionClosed

log = logging.getLogger(__name__)

DEFAULT_HIGH_WATER = 1 << 20


class SocketWriter:
    def __init__(self, sock, on_error=None, high_water: int = DEFAULT_HIGH_WATER):
        self._sock = sock
        self._on_error = on_error
        self._high_water = high_water
        self._chunks: list = []
        self._size = 0
        self._wake = Event()
        self._room = Event()
        self._room.set()
        self._idle = Event()
        self._idle.set()
        self.closed = False
        self._greenlet = None  # spawned on the first write that has to wait: most never do

    def write(self, *chunks) -> None:
        if self.closed:
            raise ConnectionClosed("socket is closed")
        if not self._chunks and self._idle.is_set():
            # Fast path: nothing queued, so try the kernel first; most writes end here,
            # without waking the writer greenlet (a switch and a loop turn per message).
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            try:
                sent = self._sock.send(data, 0, 0.0)  # timeout 0: never wait here
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                self._fail(exc)
                raise ConnectionClosed(f"socket write failed: {exc}") from None
            if sent == len(data):
                return
            chunks = (memoryview(data)[sent:],)
        for chunk in chunks:
            self._chunks.append(chunk)
            self._size += len(chunk)
        self._idle.clear()
        self._wake.set()
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)
        if self._size > self._high_water:
            self._room.clear()
            self._room.wait()
            if self.closed:
                raise ConnectionClosed("socket closed while writing")

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything written so far is on the socket (or the writer died)."""
        return self._idle.wait(timeout)

    def close(self) -> None:
        """Stop writing at once; blocked producers are released with ConnectionClosed."""
        if self.closed:
            return
        self.closed = True
        self._chunks = []
        self._room.set()
        self._idle.set()
        self._wake.set()
        if self._greenlet is not None and self._greenlet is not gevent.getcurrent():
            self._greenlet.kill(block=False)

    def _fail(self, exc: OSError) -> None:
        log.debug("write failed: %s", exc)
        self.close()
        if self._on_error:
            self._on_error(exc)

    def _run(self) -> None:
        sock = self._sock
        while not self.closed:
            self._wake.wait()
            self._wake.clear()
            while self._chunks and not self.closed:
                chunks, self._chunks, self._size = self._chunks, [], 0
                self._room.set()
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                try:
                    sock.sendall(data)
                except OSError as exc:
                    self._fail(exc)
                    return
            self._idle.set()
