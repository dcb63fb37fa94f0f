"""BARE primitives (https://baremessages.org) as Ockam uses them.

Lengths and unsigned integers are ULEB128 varints; bytes and strings carry a varint length.
Decoding goes through `Reader`, which checks every length against what is left before
slicing, so hostile input can never make us allocate more than it actually sent.
"""

from __future__ import annotations

import builtins
from typing import Final

from appliance.wire.buffer import Buffer
from appliance.wire.errors import DecodeError

MAX_VARINT_BYTES: Final = 10  # enough for a u64


def encode_uint(value: int) -> bytes:
    if value < 0:
        raise ValueError("BARE uint cannot be negative")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_bytes(data: Buffer) -> bytes:
    return encode_uint(len(data)) + data


def encode_string(text: str) -> bytes:
    return encode_bytes(text.encode("utf-8"))


class Reader:
    """A cursor over a buffer that decodes BARE values and never reads past its end."""

    __slots__ = ("_buf", "_pos")

    def __init__(self, buf: Buffer, pos: int = 0):
        self._buf = buf
        self._pos = pos

    @property
    def pos(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return len(self._buf) - self._pos

    def u8(self) -> int:
        if self._pos >= len(self._buf):
            raise DecodeError("truncated: expected a byte")
        value = self._buf[self._pos]
        self._pos += 1
        return value

    def uint(self) -> int:
        result = 0
        for shift in range(0, 7 * MAX_VARINT_BYTES, 7):
            byte = self.u8()
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
        raise DecodeError("varint longer than 10 bytes")

    def raw(self, length: int) -> bytes:
        if length > self.remaining:
            raise DecodeError(f"truncated: length {length} but only {self.remaining} bytes left")
        start = self._pos
        self._pos += length
        return bytes(self._buf[start:self._pos])

    def bytes(self) -> bytes:
        return self.raw(self.uint())

    def string(self) -> str:
        try:
            return self.bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError("string is not valid UTF-8") from exc

    def rest(self) -> builtins.bytes:  # `bytes` is the method above in here
        return self.raw(self.remaining)

    def expect_end(self) -> None:
        if self.remaining:
            raise DecodeError(f"{self.remaining} unexpected trailing bytes")


def decode_string(data: Buffer) -> str:
    """Decode a buffer holding exactly one BARE string."""
    reader = Reader(data)
    text = reader.string()
    reader.expect_end()
    return text
