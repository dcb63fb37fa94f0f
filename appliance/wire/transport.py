"""TransportMessage: the body of every frame between nodes.

`01 | onward Route | return Route | varint len | payload` (BARE, Ockam's v1 layout).
"""

from __future__ import annotations

from typing import NamedTuple

from appliance.wire import bare
from appliance.wire.address import Route, encode_route, split_route
from appliance.wire.errors import DecodeError
from appliance.wire.framing import encode_frame_header

VERSION = 1


class TransportMessage(NamedTuple):
    onward: Route
    return_route: Route
    payload: bytes

    def encode(self) -> bytes:
        return encode_head(self.onward, self.return_route, len(self.payload)) + self.payload

    @classmethod
    def decode(cls, data: bytes | memoryview) -> "TransportMessage":
        if not data or data[0] != VERSION:
            raise DecodeError(f"unknown transport message version {data[0]}" if data else "empty transport message")
        return cls(*decode_routed(data, 1))


def encode_head(onward: Route, return_route: Route, payload_length: int, tag: bytes = b"\x01") -> bytes:
    """Everything before the payload. The same layout after another first byte is a secure
    channel's PAYLOAD message, which encodes and decodes through these functions too."""
    return tag + encode_route(onward) + encode_route(return_route) + bare.encode_uint(payload_length)


def encode_frame(onward: Route, return_route: Route, payload: bytes) -> bytes:
    """The message with its TCP frame header, joined once: the payload is copied once."""
    head = encode_head(onward, return_route, len(payload))
    return b"".join((encode_frame_header(len(head) + len(payload)), head, payload))


def decode_routed(data, pos: int, copy: bool = True) -> tuple:
    """(onward, return route, payload) encoded from pos to the very end of data. Without
    `copy` (data a memoryview of a buffer that nothing else holds) the payload is a view."""
    onward, pos = split_route(data, pos)
    return_route, pos = split_route(data, pos)
    return onward, return_route, _read_payload(data, pos, copy)


def _read_payload(data, pos: int, copy: bool):
    """The length-prefixed bytes at pos, which must end exactly where data ends."""
    size = len(data)
    if pos + 1 < size:  # the common cases, one- and two-byte lengths, without a Reader
        if data[pos] < 0x80:
            start = pos + 1 if pos + 1 + data[pos] == size else None
        else:
            start = pos + 2 if pos + 2 + (data[pos] & 0x7F | data[pos + 1] << 7) == size else None
        if start is not None:
            return bytes(data[start:]) if copy else data[start:]
    reader = bare.Reader(data, pos)
    payload = reader.bytes()
    reader.expect_end()
    return payload
