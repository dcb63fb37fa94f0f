"""TCP framing between nodes, as a sans-IO state machine.

Right after connecting each side sends one protocol-version byte; then every frame is a
u32 big-endian length followed by that many bytes. A length above the configured maximum
is rejected before anything is buffered for it. A frame whose body is empty is a heartbeat.
"""

from __future__ import annotations

import struct

from appliance.wire.errors import FrameTooLarge, ProtocolVersionMismatch

PROTOCOL_VERSION = 1
PROTOCOL_VERSION_BYTE = bytes((PROTOCOL_VERSION,))
DEFAULT_MAX_FRAME = 1 << 20  # 1 MiB: room for 256 KiB portal chunks, small enough to bound memory
HEADER = struct.Struct(">I")


def encode_frame_header(length: int) -> bytes:
    return HEADER.pack(length)


class FrameDecoder:
    """Feed it received bytes; it returns the complete frames they finish."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME):
        self.max_frame = max_frame
        self._buf = bytearray()
        self._version_seen = False
        self._need: int | None = None  # body length of the frame being read

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        frames = []
        if not self._version_seen:
            if not self._buf:
                return frames
            if self._buf[0] != PROTOCOL_VERSION:
                raise ProtocolVersionMismatch(
                    f"peer speaks protocol version {self._buf[0]}, we speak {PROTOCOL_VERSION}")
            self._version_seen = True
            del self._buf[:1]
        buf = self._buf
        pos = 0
        while True:
            if self._need is None:
                if len(buf) - pos < 4:
                    break
                (length,) = HEADER.unpack_from(buf, pos)
                if length > self.max_frame:
                    raise FrameTooLarge(f"peer sent a frame of {length} bytes (max {self.max_frame})")
                pos += 4
                self._need = length
            if len(buf) - pos < self._need:
                break
            frames.append(bytes(buf[pos:pos + self._need]))
            pos += self._need
            self._need = None
        del buf[:pos]
        return frames
