"""TransportMessage: the body of every frame between nodes.

`01 | onward Route | return Route | varint len | payload` (BARE, Ockam's v1 layout).
"""

from __future__ import annotations

from typing import NamedTuple

from appliance.wire import bare
from appliance.wire.address import Route, encode_route, remember, split_route
from appliance.wire.buffer import Buffer
from appliance.wire.errors import DecodeError
from appliance.wire.framing import HEADER

VERSION = 1

# Every message of a stream carries the same two routes: both directions remember the bytes
# of a pair of routes and what they decode to. Bounded like address.py's caches, and only
# for pairs of ordinary size: a stranger's 64 hops of 1 KiB addresses are not kept.
MAX_CACHED_HEAD = 1024  # bytes of a pair of routes; a portal's are about 150
_HEADS_OUT: dict = {}  # (onward, return route, first byte) -> that byte + their encoding
_HEADS_IN: dict = {}  # the encoding of both routes -> (onward, return route)


class TransportMessage(NamedTuple):
    onward: Route
    return_route: Route
    payload: bytes

    def encode(self) -> bytes:
        return encode_head(self.onward, self.return_route, len(self.payload)) + self.payload

    @classmethod
    def decode(cls, data: bytes | memoryview) -> "TransportMessage":
        return cls(*decode_body(data)[:3])


def encode_head(onward: Route, return_route: Route, payload_length: int, tag: bytes = b"\x01") -> bytes:
    """Everything before the payload. The same layout after another first byte is a secure
    channel's PAYLOAD message, which encodes and decodes through these functions too."""
    return _routes_head(onward, return_route, tag) + bare.encode_uint(payload_length)


def _routes_head(onward: Route, return_route: Route, tag: Buffer) -> bytes:
    head = _HEADS_OUT.get((onward, return_route, tag))
    if head is None:
        head = tag + encode_route(onward) + encode_route(return_route)
        if len(head) <= MAX_CACHED_HEAD:
            remember(_HEADS_OUT, (onward, return_route, tag), head)
    return head


def encode_frame(onward: Route, return_route: Route, payload) -> bytes:
    """The message with its TCP frame header, joined once: the payload is copied once."""
    head = _routes_head(onward, return_route, b"\x01")
    size = len(payload)
    length = bytes((size,)) if size < 0x80 else bare.encode_uint(size)
    return b"".join((HEADER.pack(len(head) + len(length) + size), head, length, payload))


def decode_body(body, hint: int = 0) -> tuple:
    """(onward, return route, payload, the routes' length) of a frame's body.

    `hint` is the routes' length in the last message of the same link: when those bytes of
    this one are a pair of routes decoded before, they are that pair (the encoding is
    self-delimiting), and neither route is scanned again."""
    if not body or body[0] != VERSION:
        raise DecodeError(f"unknown transport message version {body[0]}" if body else "empty transport message")
    if hint:
        routes = _HEADS_IN.get(bytes(body[1:1 + hint]))
        if routes is not None:
            return routes[0], routes[1], _read_payload(body, 1 + hint, True), hint
    onward, pos = split_route(body, 1)
    return_route, pos = split_route(body, pos)
    if pos - 1 <= MAX_CACHED_HEAD:
        remember(_HEADS_IN, bytes(body[1:pos]), (onward, return_route))
    return onward, return_route, _read_payload(body, pos, True), pos - 1


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
        elif data[pos + 1] < 0x80:
            start = pos + 2 if pos + 2 + (data[pos] & 0x7F | data[pos + 1] << 7) == size else None
        else:
            start = None
        if start is not None:
            return bytes(data[start:]) if copy else data[start:]
    reader = bare.Reader(data, pos)
    payload = reader.bytes()
    reader.expect_end()
    return payload
