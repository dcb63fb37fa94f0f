"""Credit windows: how many bytes each side of a portal stream may still send.

The receiver grants its window once when the stream opens, then grants back what its
local socket has *taken* (not what it queued) once that reaches a quarter of the window, and
whatever it has taken at each liveness tick:
a stalled client stops its sender after one window, and memory per stream is bounded by it.
"""

from __future__ import annotations

from appliance.stream.errors import FlowControlError

INITIAL_WINDOW = 1 << 20  # the protocol's: what Pong grants the inlet, whatever the outlet's window
DEFAULT_WINDOW = INITIAL_WINDOW  # per stream and direction; yamux grows to 6 MiB, SSH uses 2 MiB
MAX_SEND_CREDIT = 16 << 20  # more outstanding credit than this is not a window we would use


class SendCredit:
    """What the peer has granted us and we have not used yet."""

    __slots__ = ("available",)

    def __init__(self):
        self.available = 0

    def grant(self, size: int) -> None:
        if self.available + size > MAX_SEND_CREDIT:
            raise FlowControlError(f"peer granted {self.available + size} bytes of credit "
                                   f"(at most {MAX_SEND_CREDIT})")
        self.available += size

    def use(self, size: int) -> None:
        if size > self.available:
            raise FlowControlError(f"sending {size} bytes with {self.available} bytes of credit")
        self.available -= size


class ReceiveWindow:
    """What we granted the peer, what it may still send, and what our socket has taken."""

    __slots__ = ("size", "allowed", "taken", "_threshold")

    def __init__(self, size: int = DEFAULT_WINDOW):
        self.size = size
        self.allowed = 0  # bytes the peer may still send
        self.taken = 0  # bytes our socket took since the last grant
        self._threshold = max(1, size // 4)

    def open(self, size: int | None = None) -> int:
        """The first grant: the whole window, or `size` when the protocol fixes it."""
        self.allowed = self.size if size is None else size
        return self.allowed

    def receive(self, size: int) -> None:
        if size > self.allowed:
            raise FlowControlError(f"peer sent {size} bytes with {self.allowed} bytes of credit")
        self.allowed -= size

    def took(self, size: int) -> int:
        """Bytes written to our socket; returns a grant to send now, or 0."""
        self.taken += size
        if self.taken < self._threshold:
            return 0
        return self.flush()

    def flush(self) -> int:
        """Grant back whatever was taken, however little (a slow stream's sender then hears
        from us now and then, not once per quarter window)."""
        grant, self.taken = self.taken, 0
        self.allowed += grant
        return grant
