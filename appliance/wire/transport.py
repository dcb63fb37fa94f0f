"""TransportMessage: the body of every frame between nodes.

`01 | onward Route | return Route | varint len | payload` (BARE, Ockam's v1 layout).
"""

from __future__ import annotations

from typing import Final, NamedTuple

from appliance.wire import bare
from appliance.wire.address import Route, encode_route, remember, split_route
from appliance.wire.buffer import Buffer
from appliance.wire.errors import DecodeError
from appliance.wire.framing import HEADER

VERSION: Final = 1

# Every message of a stream carries the same two routes: both directions remember the bytes
# of a pair of routes and what they decode to. Bounded like address.py's caches, and only
# for pairs of ordinary size: a stranger's 64 hops of 1 KiB addresses are not kept.
MAX_CACHED_HEAD: Final = 1024  # bytes of a pair of routes; a portal's are about 150
_HEADS_OUT: Final[dict] = {}  # (onward, return route, first byte) -> that byte + their encoding
_HEADS_IN: Final[dict] = {}  # the encoding of both routes -> (onward, return route)


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
    return routes_head(onward, return_route, tag) + bare.encode_uint(payload_length)


def routes_head(onward: Route, return_route: Route, tag: Buffer = b"\x01") -> bytes:
    """The first byte and both routes: what comes before the payload's length."""
    head = _HEADS_OUT.get((onward, return_route, tag))
    if head is None:
        head = tag + encode_route(onward) + encode_route(return_route)
        if len(head) <= MAX_CACHED_HEAD:
            remember(_HEADS_OUT, (onward, return_route, tag), head)
    return head


def encode_frame(onward: Route, return_route: Route, payload) -> bytes:
    """The message with its TCP frame header, joined once: the payload is copied once."""
    return b"".join((*frame_prefix(onward, return_route, len(payload)), payload))


def frame_prefix(onward: Route, return_route: Route, size: int) -> tuple:
    """(frame header, first byte and routes, the payload's length): all of a message's frame
    before its payload of `size` bytes, in parts, to be joined with the payload or sent
    before it (a gathering send: a long payload is not copied behind them)."""
    head = routes_head(onward, return_route)
    length = bytes((size,)) if size < 0x80 else bare.encode_uint(size)
    return HEADER.pack(len(head) + len(length) + size), head, length


def decode_body(body, hint: int = 0) -> tuple:
    """(onward, return route, payload, the routes' length) of a frame's body (see decode_routed)."""
    if not body or body[0] != VERSION:
        raise DecodeError(f"unknown transport message version {body[0]}" if body else "empty transport message")
    return decode_routed(body, hint)


def decode_routed(data, hint: int = 0, copy: bool = True) -> tuple:
    """(onward, return route, payload, the routes' length) of the routes and payload after
    data's first byte, the payload ending where data ends. Without `copy` (data a buffer
    that nothing else holds) the payload is a view of it.

    `hint` is the routes' length in the last message of the same link or channel: when
    those bytes of this one are a pair of routes decoded before, they are that pair (the
    encoding is self-delimiting), and neither route is scanned again."""
    if hint:
        routes = _HEADS_IN.get(bytes(data[1:1 + hint]))
        if routes is not None:
            return routes[0], routes[1], _read_payload(data, 1 + hint, copy), hint
    onward, pos = split_route(data, 1)
    return_route, pos = split_route(data, pos)
    if pos - 1 <= MAX_CACHED_HEAD:
        remember(_HEADS_IN, bytes(data[1:pos]), (onward, return_route))
    return onward, return_route, _read_payload(data, pos, copy), pos - 1


def _read_payload(data, pos: int, copy: bool):
    """The length-prefixed bytes at pos, which must end exactly where data ends."""
    start = payload_at(data, pos)
    if start >= 0:
        return bytes(data[start:]) if copy else data[start:]
    reader = bare.Reader(data, pos)  # anything else: the checked reader decides, and says what is wrong
    payload = reader.bytes()
    reader.expect_end()
    return payload


def payload_at(data, pos: int) -> int:
    """Where the payload whose length is at pos starts, when that length is of one to three
    bytes (up to 2 MiB) in its shortest form (as we encode it: a relay passes the bytes on
    as they are) and the payload ends exactly where data ends; -1 otherwise."""
    size = len(data)
    if pos < size:
        byte = data[pos]
        start, length = pos + 1, byte & 0x7F
        if byte >= 0x80 and start < size:
            byte = data[start]
            start, length = start + 1, length | (byte & 0x7F) << 7
            if byte >= 0x80 and start < size:
                byte = data[start]
                start, length = start + 1, length | (byte & 0x7F) << 14
        if byte < 0x80 and (byte or start == pos + 1) and start + length == size:
            return start
    return -1
