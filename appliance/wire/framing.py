"""TCP framing between nodes, as a sans-IO state machine.

Right after connecting each side sends one protocol-version byte; then every frame is a
u32 big-endian length followed by that many bytes. A length above the configured maximum
is rejected before anything is buffered for it. A frame whose body is empty is a heartbeat.
"""

from __future__ import annotations

import struct
from typing import Final

from appliance.wire.errors import FrameTooLarge, ProtocolVersionMismatch

PROTOCOL_VERSION: Final = 2  # 2: portal flow control (Credit, End) and channel probes; 1 peers are refused
PROTOCOL_VERSION_BYTE: Final = bytes((PROTOCOL_VERSION,))
DEFAULT_MAX_FRAME: Final = 1 << 20  # 1 MiB: room for 256 KiB portal chunks, small enough to bound memory
HEADER: Final = struct.Struct(">I")


def encode_frame_header(length: int) -> bytes:
    return HEADER.pack(length)


def _length_at(data: bytes, pos: int) -> int:
    """The frame header at pos (HEADER.unpack_from, without a call through the struct module)."""
    return data[pos] << 24 | data[pos + 1] << 16 | data[pos + 2] << 8 | data[pos + 3]


class FrameDecoder:
    """Feed it received bytes; it returns the complete frames they finish.

    Frames are memoryviews into the received data (or into one join of several receives),
    so a byte is copied at most once on its way through: no growing buffer, no memmove."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME):
        self.max_frame = max_frame
        self._pending: list = []  # received chunks not yet consumed
        self._pending_len = 0
        self._version_seen = False

    def feed(self, data: bytes) -> list:
        """`data` is what a socket gave: bytes (the compiled build refuses anything else)."""
        if not data:
            return []
        if not self._version_seen:
            if data[0] != PROTOCOL_VERSION:
                raise ProtocolVersionMismatch(
                    f"peer speaks protocol version {data[0]}, we speak {PROTOCOL_VERSION}")
            self._version_seen = True
            data = data[1:]
        if not self._pending and len(data) >= 4:  # the common case: exactly one whole frame
            length = _length_at(data, 0)
            if len(data) == 4 + length and length <= self.max_frame:
                return [memoryview(data)[4:]]
        if self._pending:
            if len(self._pending[0]) < 4:  # a split header: make it whole once, peek cheaply after
                self._pending = [b"".join(self._pending)]
            self._pending.append(data)
            self._pending_len += len(data)
            if self._pending_len < 4 or self._pending_len < 4 + self._peek_length():
                return []
            data = b"".join(self._pending)
            self._pending, self._pending_len = [], 0
        frames = []
        view = memoryview(data)
        pos, end = 0, len(data)
        while end - pos >= 4:
            length = _length_at(data, pos)
            if length > self.max_frame:
                raise FrameTooLarge(f"peer sent a frame of {length} bytes (max {self.max_frame})")
            if end - pos - 4 < length:
                break
            frames.append(view[pos + 4:pos + 4 + length])
            pos += 4 + length
        if pos < end:
            tail = view[pos:]
            if len(tail) >= 4:
                (length,) = HEADER.unpack_from(tail)
                if length > self.max_frame:
                    raise FrameTooLarge(f"peer sent a frame of {length} bytes (max {self.max_frame})")
            self._pending, self._pending_len = [tail], len(tail)
        return frames

    def clear(self) -> None:
        """Drop the partial frame held: the connection is gone (its buffers must not wait for
        the garbage collector to break the reference cycles a closed connection leaves)."""
        self._pending, self._pending_len = [], 0

    @property
    def incomplete(self) -> int:
        """Bytes held of a frame not yet complete."""
        return self._pending_len

    @property
    def claimed(self) -> int:
        """The length the incomplete frame's header claims (0 while the header is incomplete)."""
        return self._peek_length() if self._pending_len >= 4 else 0

    def _peek_length(self) -> int:
        first = self._pending[0]
        head = first[:4] if len(first) >= 4 else b"".join(self._pending[:2])[:4]
        (length,) = HEADER.unpack(head)
        if length > self.max_frame:
            raise FrameTooLarge(f"peer sent a frame of {length} bytes (max {self.max_frame})")
        return length
