"""PortalMessage: what a TCP inlet and outlet say to each other.

A BARE enum: Ping `00`, Pong `01`, Disconnect `02`, Payload `03 | varint len | data`.
"""

from __future__ import annotations

from appliance.wire import bare
from appliance.wire.errors import DecodeError

PING = b"\x00"
PONG = b"\x01"
DISCONNECT = b"\x02"
PAYLOAD_TAG = 3


def encode_payload(data: bytes) -> bytes:
    return b"\x03" + bare.encode_uint(len(data)) + data


def decode(message: bytes) -> tuple[int, bytes]:
    """Return (tag, data); data is empty except for Payload."""
    if not message:
        raise DecodeError("empty portal message")
    tag = message[0]
    if tag == PAYLOAD_TAG and len(message) > 2 and message[1] < 0x80 and len(message) == message[1] + 2:
        return tag, message[2:]  # the common small Payload: a one-byte length, checked exactly
    if tag < PAYLOAD_TAG:
        if len(message) != 1:
            raise DecodeError(f"portal message {tag} has {len(message) - 1} trailing bytes")
        return tag, b""
    if tag == PAYLOAD_TAG:
        reader = bare.Reader(message, 1)
        data = reader.bytes()
        reader.expect_end()
        return tag, data
    raise DecodeError(f"unknown portal message tag {tag}")
