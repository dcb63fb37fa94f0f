"""Addresses and routes: where a message goes next, and the way back.

An address is a transport type byte plus opaque bytes; its text form is `tt#inner`
(`0#echo`, `1#127.0.0.1:4000`), where a missing `tt#` means LOCAL. A route is an ordered
tuple of addresses; each hop removes itself from the front of the onward route.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from appliance.wire import bare
from appliance.wire.buffer import Buffer
from appliance.wire.errors import DecodeError

LOCAL = 0
TCP = 1

MAX_ROUTE_HOPS = 64
MAX_ADDRESS_BYTES = 1024
ROUTE_CACHE_SIZE = 4096  # per direction; emptied when full


class Address(NamedTuple):
    tt: int
    inner: bytes

    @classmethod
    def local(cls, name: str | bytes) -> "Address":
        return cls(LOCAL, name.encode() if isinstance(name, str) else name)

    @classmethod
    def random_local(cls) -> "Address":
        """A fresh worker address: 16 random bytes as 32 lowercase hex, like Ockam's."""
        return cls(LOCAL, os.urandom(16).hex().encode())

    @classmethod
    def parse(cls, text: str) -> "Address":
        tt_text, sep, inner = text.partition("#")
        if not sep:
            return cls.local(text)
        if not tt_text.isdigit() or int(tt_text) > 255:
            raise ValueError(f"bad transport type in address {text!r}")
        return cls(int(tt_text), inner.encode())

    def __str__(self) -> str:
        return f"{self.tt}#{self.inner.decode('utf-8', 'replace')}"

    def encode(self) -> bytes:
        return bytes((self.tt,)) + bare.encode_bytes(self.inner)


Route = tuple  # tuple[Address, ...]; an alias that says what the tuple means


# Every message of a portal stream carries the same two routes, so both directions of the
# route codec remember what they did: a hit costs one dict lookup instead of building the
# addresses again. Entries are immutable (tuples of Address, bytes); a flood of distinct
# routes only empties the caches, it cannot grow them.
_ENCODED: dict = {}
_DECODED: dict = {}


def remember(cache: dict, key, value) -> None:
    """Put key in a bounded cache: a full one is emptied first (a flood only empties it)."""
    if len(cache) >= ROUTE_CACHE_SIZE:
        cache.clear()
    cache[key] = value


def encode_route(route: Route) -> bytes:
    encoded = _ENCODED.get(route)
    if encoded is None:
        encoded = bare.encode_uint(len(route)) + b"".join(a.encode() for a in route)
        remember(_ENCODED, route, encoded)
    return encoded


def read_address(reader: bare.Reader) -> Address:
    tt = reader.u8()
    length = reader.uint()
    if length > MAX_ADDRESS_BYTES:
        raise DecodeError(f"address of {length} bytes is longer than {MAX_ADDRESS_BYTES}")
    return Address(tt, reader.raw(length))


def read_route(reader: bare.Reader) -> Route:
    count = reader.uint()
    if count > MAX_ROUTE_HOPS:
        raise DecodeError(f"route of {count} hops is longer than {MAX_ROUTE_HOPS}")
    return tuple([read_address(reader) for _ in range(count)])


def split_route(buf, pos: int) -> tuple:
    """(the route encoded at buf[pos:], the position after it); buf may be a memoryview.

    Real routes have one-byte counts and lengths: their extent is found by skipping, and
    their bytes find the decoded route in the cache. Anything else, truncated data
    included, goes to the checked decoder, which says what is wrong."""
    try:
        count = buf[pos]
        end = pos + 1
        if count < 0x80:
            for _ in range(count):
                length = buf[end + 1]
                if length >= 0x80:
                    break
                end += 2 + length
            else:
                if end <= len(buf):
                    key = bytes(buf[pos:end])
                    route = _DECODED.get(key)
                    if route is None:
                        route = _decode_scanned(key)
                        remember(_DECODED, key, route)
                    return route, end
    except IndexError:
        pass
    reader = bare.Reader(buf, pos)
    return read_route(reader), reader.pos


def _decode_scanned(key: Buffer) -> Route:
    """A route whose extent and one-byte lengths split_route has just checked."""
    if key[0] > MAX_ROUTE_HOPS:
        raise DecodeError(f"route of {key[0]} hops is longer than {MAX_ROUTE_HOPS}")
    addresses, pos = [], 1
    for _ in range(key[0]):
        end = pos + 2 + key[pos + 1]
        addresses.append(Address(key[pos], key[pos + 2:end]))
        pos = end
    return tuple(addresses)


def route_text(route: Route) -> str:
    return " => ".join(str(a) for a in route) or "(empty)"
