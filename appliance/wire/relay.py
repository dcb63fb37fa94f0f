"""Relay registration: how a private node asks a relay node for `forward_to_<name>`.

Request (to `forwarding_service`): BARE string, the full relay address (`forward_to_n3`).
Reply (from the relay worker on success, from the service on refusal): a BARE enum,
`00 | string address` = registered, `01 | string reason` = refused.
"""

from __future__ import annotations

from typing import NamedTuple

from appliance.wire import bare
from appliance.wire.errors import DecodeError

PREFIX = "forward_to_"
MAX_NAME = 128


def relay_address(name: str) -> str:
    return name if name.startswith(PREFIX) else PREFIX + name


def validate_name(name: str) -> None:
    if not name or len(name) > MAX_NAME or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(f"bad relay name {name!r}: use 1-{MAX_NAME} letters, digits, '-', '_' or '.'")


def encode_request(address: str) -> bytes:
    return bare.encode_string(address)


def decode_request(payload: bytes) -> str:
    address = bare.decode_string(payload)
    if not address.startswith(PREFIX):
        raise DecodeError(f"relay address must start with {PREFIX!r}")
    try:
        validate_name(address[len(PREFIX):])
    except ValueError as exc:
        raise DecodeError(str(exc)) from None
    return address


class RelayReply(NamedTuple):
    ok: bool
    text: str  # the relay address when ok, else the reason

    def encode(self) -> bytes:
        return (b"\x00" if self.ok else b"\x01") + bare.encode_string(self.text)

    @classmethod
    def decode(cls, payload: bytes) -> "RelayReply":
        reader = bare.Reader(payload)
        tag = reader.u8()
        if tag > 1:
            raise DecodeError(f"unknown relay reply tag {tag}")
        text = reader.string()
        reader.expect_end()
        return cls(tag == 0, text)
