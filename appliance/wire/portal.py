"""PortalMessage: what a TCP inlet and outlet say to each other.

A BARE enum: Ping `00`, Pong `01`, Disconnect `02`, Payload `03 | varint len | data`,
Credit `04 | varint bytes` (the sender may send that many more Payload bytes),
End `05` (the sender will send no more Payload: a TCP half-close),
Origin `06 | string client | string inlet` (sent just before each Ping: the client's
address and the one it connected to, as HOST:PORT, for the outlet's PROXY protocol header;
an outlet of an older version drops it as unknown and answers the Ping all the same).
"""

from __future__ import annotations

from typing import Final

from appliance.wire import bare
from appliance.wire.buffer import Buffer
from appliance.wire.errors import DecodeError

PING: Final = b"\x00"
PONG: Final = b"\x01"
DISCONNECT: Final = b"\x02"
END: Final = b"\x05"
PING_TAG: Final = 0
PONG_TAG: Final = 1
DISCONNECT_TAG: Final = 2
PAYLOAD_TAG: Final = 3
CREDIT_TAG: Final = 4
END_TAG: Final = 5
ORIGIN_TAG: Final = 6
MAX_ADDRESS: Final = 262  # "[" + 45 characters of IPv6 + "]:" + 5 digits, with room: HOST:PORT, not more
MAX_CREDIT: Final = 1 << 32  # a larger grant is not a window anybody means


def encode_payload(data: Buffer) -> bytes:
    return b"\x03" + bare.encode_uint(len(data)) + data


def encode_credit(size: int) -> bytes:
    return b"\x04" + bare.encode_uint(size)


def encode_origin(client: str, inlet: str) -> bytes:
    return b"\x06" + bare.encode_string(client) + bare.encode_string(inlet)


def decode(message: Buffer) -> tuple:
    """(tag, value): the data of a Payload, the byte count of a Credit, else b""."""
    if not message:
        raise DecodeError("empty portal message")
    tag = message[0]
    if tag == PAYLOAD_TAG and len(message) > 2 and message[1] < 0x80 and len(message) == message[1] + 2:
        return tag, message[2:]  # the common small Payload: a one-byte length, checked exactly
    if tag in (PING_TAG, PONG_TAG, DISCONNECT_TAG, END_TAG):
        if len(message) != 1:
            raise DecodeError(f"portal message {tag} has {len(message) - 1} trailing bytes")
        return tag, b""
    if tag == PAYLOAD_TAG:  # the data: a view of the message, not a copy (it is most of it)
        reader = bare.Reader(message, 1)
        size = reader.uint()
        if size != reader.remaining:
            raise DecodeError(f"payload of {size} bytes in {reader.remaining}")
        return tag, memoryview(message)[reader.pos:]
    if tag == ORIGIN_TAG:
        reader = bare.Reader(message, 1)
        client, inlet = reader.string(), reader.string()
        reader.expect_end()
        if len(client) > MAX_ADDRESS or len(inlet) > MAX_ADDRESS:
            raise DecodeError("an Origin address longer than any HOST:PORT")
        return tag, (client, inlet)
    if tag == CREDIT_TAG:
        reader = bare.Reader(message, 1)
        size = reader.uint()
        reader.expect_end()
        if not 0 < size <= MAX_CREDIT:
            raise DecodeError(f"credit of {size} bytes is out of range (1..{MAX_CREDIT})")
        return tag, size
    raise DecodeError(f"unknown portal message tag {tag}")
