"""A socket writer that sends at once, or once per loop turn inside a Batch, and never waits.

A write goes straight to the kernel when nothing is queued and it is the writer's first in
this turn of the loop: a lone request pays no delay. A second write in the same turn (the
loop is working through many readable sockets: fifty clients' requests for one link), and
every write inside a `Batch` (a reader working through several frames of one receive), is
queued instead, and one flush per writer, run by the hub after every greenlet woken in that
turn has run and before it waits for I/O again, sends them together.
What the kernel does not take is drained by a greenlet that waits for the socket. `write`
never blocks its caller, which is usually a link reader that serves many streams: what may
queue is bounded by its owner (a portal stream by its credit window; a link by the windows
of the streams it carries, and by LinkMonitor, which closes a link that makes no progress),
and a queue above `limit` fails the writer like a broken socket.
`on_sent(n)` hears of every byte the kernel took, which is when a portal grants credit back.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Final, Protocol

import gevent
from gevent.event import Event

from appliance.node.errors import ConnectionClosed

log = logging.getLogger(__name__)


class WritableSocket(Protocol):
    """What a writer needs of its socket (a HubSocket; tests give it fakes)."""

    def send(self, data) -> int: ...

    def send_parts(self, parts: list) -> int: ...

    def wait_writable(self) -> None: ...

    def unsent(self) -> int | None: ...

DEFAULT_LIMIT: Final = 1 << 30  # last resort only: a link whose peer reads nothing is found by LinkMonitor
MAX_SEND: Final = 256 * 1024  # bytes gathered for one send: few syscalls without a long queue in one
MAX_PARTS: Final = 512  # chunks gathered for one send (Linux takes at most 1024 in one sendmsg)


_turn = 0  # the loop's turns, counted by a check watcher (once per turn; libuv has no prepare watchers)


def _next_turn() -> None:
    global _turn
    _turn += 1


def _count_turns() -> None:
    """Start counting the turns of this thread's loop, once per hub."""
    hub = gevent.get_hub()
    if getattr(hub, "ockam_turns", None) is None:
        hub.ockam_turns = hub.loop.check(ref=False)
        hub.ockam_turns.start(_next_turn)


class Batch:
    """`with Batch():` around the handling of several frames from one receive.

    Inside it, writes wait for the end of the loop turn and go out together: the outlet
    that gets twenty requests in one read writes them to their twenty sockets in a row,
    after it has decoded them all, and a relay forwards them in one send. Outside it a
    write is sent at once, which is what a lone request wants. A greenlet that waits
    inside a batch only delays others' writes to the end of the turn; nothing is held."""

    depth: ClassVar[int] = 0

    def __enter__(self) -> None:
        Batch.depth += 1

    def __exit__(self, *exc) -> None:
        Batch.depth -= 1


class SocketWriter:
    """Its events are made only when somebody has to wait: a portal holds thousands of
    writers that never do."""

    def __init__(self, sock: WritableSocket, on_error=None, limit: int = DEFAULT_LIMIT, on_sent=None):
        self._sock = sock
        self._on_error = on_error
        self._limit = limit
        self._on_sent = on_sent
        self._chunks: list = []
        self._size = 0
        self._flush_pending = False
        self._draining: Any = None  # the greenlet waiting for the socket to take the rest
        self._turn = -1  # the loop's turn of the last write sent at once
        self._flushed: Event | None = None  # flush() waits on it
        self.idle = True  # everything written so far is on the socket
        self.sent = 0  # bytes the kernel took, ever: progress, for whoever watches it
        self.closed = False
        _count_turns()

    def write(self, data, rest=None) -> None:
        """Send `data`, and `rest` after it without joining the two (a payload passed on
        behind a new head: one gathering send, no copy)."""
        if self.closed:
            raise ConnectionClosed("socket is closed")
        if not Batch.depth and self.idle and self._turn != _turn:
            self._turn = _turn
            parts = None if rest is None else [data, rest]
            try:
                sent = self._sock.send(data) if parts is None else self._sock.send_parts(parts)
            except OSError as exc:
                self._fail(exc)
                raise ConnectionClosed(f"socket write failed: {exc}") from None
            if parts is not None:
                for part in _unsent(parts, sent):
                    self._queue(part)
            elif sent < len(data):
                self._queue(memoryview(data)[sent:])
            if sent:
                self._progress(sent)  # last: what it causes may close this writer
            return
        self._queue(data)
        if rest is not None:
            self._queue(rest)

    def _queue(self, data) -> None:
        self._chunks.append(data)
        self._size += len(data)
        self.idle = False
        if self._size > self._limit:
            self._fail(OSError(f"peer is not reading: {self._size} bytes queued"), later=True)
            raise ConnectionClosed("peer is not reading")
        if not self._flush_pending and self._draining is None:
            self._flush_pending = True
            gevent.get_hub().loop.run_callback(self._flush)

    @property
    def backlog(self) -> int:
        """Bytes written and not yet taken by the kernel."""
        return self._size

    def progress(self) -> tuple:
        """Changes while the peer reads: bytes the kernel took, and bytes it still holds (the
        writer is woken only when a third of a full send buffer drained: on a slow link the
        second one moves first)."""
        return self.sent, self._sock.unsent()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything written so far is on the socket (or the writer died)."""
        if self.idle:
            return True
        if self._flushed is None:
            self._flushed = Event()
        return self._flushed.wait(timeout)

    def close(self) -> None:
        """Stop writing at once; what is queued is dropped."""
        if self.closed:
            return
        self.closed = True
        self._chunks = []
        self._size = 0
        self._set_idle()
        if self._draining is not None and self._draining is not gevent.getcurrent():
            self._draining.kill(block=False)

    def _set_idle(self) -> None:
        self.idle = True
        if self._flushed is not None:
            self._flushed.set()
            self._flushed = None

    def _flush(self) -> None:
        """Runs in the hub: it must never wait, so a socket that is full is left to _drain."""
        self._flush_pending = False
        if self.closed or self._draining is not None:
            return
        if not self._send_now():
            return  # failed: closed already
        if self._chunks:
            self._draining = gevent.spawn(self._drain)
        else:
            self._set_idle()

    def _drain(self) -> None:
        try:
            while self._chunks and not self.closed:
                self._sock.wait_writable()
                if not self._send_now():
                    return
        except OSError as exc:
            self._fail(exc)
            return
        self._draining = None
        if not self.closed:
            self._set_idle()

    def _send_now(self) -> bool:
        """Send until the queue is empty or the kernel is full; False when the socket failed.
        Queued chunks go out together in one gathering send: none is copied into another."""
        chunks = self._chunks
        while chunks:
            count, size = 1, len(chunks[0])
            while count < len(chunks) and size < MAX_SEND and count < MAX_PARTS:
                size += len(chunks[count])
                count += 1
            try:
                sent = self._sock.send(chunks[0]) if count == 1 else self._sock.send_parts(chunks[:count])
            except OSError as exc:
                self._fail(exc, later=True)  # we may be in the hub, which must not wait
                return False
            self._size -= sent
            chunks[:count] = _unsent(chunks[:count], sent)
            if sent:
                self._progress(sent)
            if sent < size or self.closed:
                break
        return not self.closed

    def _progress(self, sent: int) -> None:
        self.sent += sent
        if self._on_sent is not None:
            self._on_sent(sent)

    def _fail(self, exc: OSError, later: bool = False) -> None:
        """Close now; tell the owner once (in a greenlet of its own when `later`)."""
        if self.closed:
            return
        log.debug("write failed: %s", exc)
        self.close()
        if self._on_error:
            if later:
                gevent.spawn(self._on_error, exc)
            else:
                self._on_error(exc)


def _unsent(parts: list, sent: int) -> list:
    """What is left of `parts`, in order, once a send took their first `sent` bytes: the
    parts it did not reach, the one it stopped inside cut to a view of its rest."""
    whole = 0
    while whole < len(parts) and sent >= len(parts[whole]):
        sent -= len(parts[whole])
        whole += 1
    left = parts[whole:]
    if sent:
        left[0] = memoryview(left[0])[sent:]
    return left
