"""TransportMessage: the body of every frame between nodes.

`01 | onward Route | return Route | varint len | payload` (BARE, Ockam's v1 layout).
"""

from __future__ import annotations

from typing import NamedTuple

from appliance.wire import bare
from appliance.wire.address import Route, encode_route, read_route
from appliance.wire.errors import DecodeError

VERSION = 1


class TransportMessage(NamedTuple):
    onward: Route
    return_route: Route
    payload: bytes

    def encode(self) -> bytes:
        return b"".join((
            b"\x01",
            encode_route(self.onward),
            encode_route(self.return_route),
            bare.encode_uint(len(self.payload)),
            self.payload,
        ))

    @classmethod
    def decode(cls, data: bytes | memoryview) -> "TransportMessage":
        reader = bare.Reader(data)
        version = reader.u8()
        if version != VERSION:
            raise DecodeError(f"unknown transport message version {version}")
        onward = read_route(reader)
        return_route = read_route(reader)
        payload = reader.bytes()
        reader.expect_end()
        return cls(onward, return_route, payload)
