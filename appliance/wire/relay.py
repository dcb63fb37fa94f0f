"""Relay registration: how a private node asks a relay node for `forward_to_<name>`.

Request (to `forwarding_service`): BARE string, the full relay address (`forward_to_n3`),
then, to take back a name registered before, the BARE data secret its reply carried.
Reply (from the relay worker on success, from the service on refusal): a BARE enum,
`00 | string address | data secret` = registered, `01 | string reason` = refused.
The secret binds a name registered without a secure channel to whoever registered it.
"""

from __future__ import annotations

from typing import NamedTuple

from appliance.wire import bare
from appliance.wire.errors import BadRelayName, DecodeError

PREFIX = "forward_to_"
MAX_NAME = 128
SECRET_SIZE = 16


def relay_address(name: str) -> str:
    return name if name.startswith(PREFIX) else PREFIX + name


def validate_name(name: str) -> None:
    if not name or len(name) > MAX_NAME or not all(c.isalnum() or c in "-_." for c in name):
        raise BadRelayName(f"bad relay name {name!r}: use 1-{MAX_NAME} letters, digits, '-', '_' or '.'")


def encode_request(address: str, secret: bytes = b"") -> bytes:
    return bare.encode_string(address) + (bare.encode_bytes(secret) if secret else b"")


def decode_request(payload: bytes) -> tuple:
    """(relay address, secret or b"")."""
    reader = bare.Reader(payload)
    address = reader.string()
    secret = reader.bytes() if reader.remaining else b""
    reader.expect_end()
    if secret and len(secret) != SECRET_SIZE:
        raise DecodeError(f"a relay secret has {SECRET_SIZE} bytes, not {len(secret)}")
    if not address.startswith(PREFIX):
        raise DecodeError(f"relay address must start with {PREFIX!r}")
    try:
        validate_name(address[len(PREFIX):])
    except BadRelayName as exc:
        raise DecodeError(str(exc)) from None
    return address, secret


class RelayReply(NamedTuple):
    ok: bool
    text: str  # the relay address when ok, else the reason
    secret: bytes = b""  # when ok: what takes the name back after its link is lost

    def encode(self) -> bytes:
        if self.ok:
            return b"\x00" + bare.encode_string(self.text) + bare.encode_bytes(self.secret)
        return b"\x01" + bare.encode_string(self.text)

    @classmethod
    def decode(cls, payload: bytes) -> "RelayReply":
        reader = bare.Reader(payload)
        tag = reader.u8()
        if tag > 1:
            raise DecodeError(f"unknown relay reply tag {tag}")
        text = reader.string()
        secret = reader.bytes() if tag == 0 else b""
        reader.expect_end()
        return cls(tag == 0, text, secret)
