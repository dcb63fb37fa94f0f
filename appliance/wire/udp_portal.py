"""UdpPortalMessage: what a UDP inlet and outlet say to each other.

A BARE enum, its tags after the TCP portal's so that neither is taken for the other:
Datagram `10 | varint len | data` (one UDP datagram, whole: 0 to 65 507 bytes),
Refused `11 | string reason` (the outlet will not carry this flow: not authorized, or it
has as many flows as it may).
"""

from __future__ import annotations

from appliance.wire import bare
from appliance.wire.errors import DecodeError

DATAGRAM_TAG, REFUSED_TAG = 0x10, 0x11
MAX_DATAGRAM = 65_507  # the most an IPv4 UDP datagram carries
MAX_REASON = 256


def encode_datagram(data: bytes) -> bytes:
    return b"\x10" + bare.encode_uint(len(data)) + data


def encode_refused(reason: str) -> bytes:
    return b"\x11" + bare.encode_string(reason[:MAX_REASON])


def decode(message: bytes) -> tuple:
    """(tag, value): the data of a Datagram, the reason of a Refused."""
    if not message:
        raise DecodeError("empty UDP portal message")
    reader = bare.Reader(message, 1)
    if message[0] == DATAGRAM_TAG:
        size = reader.uint()
        if size != reader.remaining:
            raise DecodeError(f"datagram of {size} bytes in {reader.remaining}")
        if size > MAX_DATAGRAM:
            raise DecodeError(f"datagram of {size} bytes: UDP carries {MAX_DATAGRAM} at most")
        return DATAGRAM_TAG, bytes(message[reader.pos:])
    if message[0] == REFUSED_TAG:
        reason = reader.string()
        reader.expect_end()
        if len(reason) > MAX_REASON:
            raise DecodeError("a refusal longer than any reason")
        return REFUSED_TAG, reason
    raise DecodeError(f"unknown UDP portal message tag {message[0]}")
