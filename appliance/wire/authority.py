"""Requests to a project's authority service (`/service/authority`, over a secure channel).

    Request = 00 | string token      enroll: spend a one-time ticket; the sender becomes a member
            | 01                     issue: a fresh credential for the sender (members only)
    Reply   = 00 | data body         ok (body: the credential for issue, empty for enroll)
            | 01 | string reason     refused
"""

from __future__ import annotations

from appliance.wire import bare
from appliance.wire.errors import DecodeError

ENROLL, ISSUE = 0, 1


def encode_enroll(token: str) -> bytes:
    return b"\x00" + bare.encode_string(token)


ISSUE_REQUEST = b"\x01"


def decode_request(payload: bytes) -> tuple:
    """(ENROLL, token) or (ISSUE, "")."""
    reader = bare.Reader(payload)
    tag = reader.u8()
    if tag == ENROLL:
        token = reader.string()
        reader.expect_end()
        return ENROLL, token
    if tag == ISSUE:
        reader.expect_end()
        return ISSUE, ""
    raise DecodeError(f"unknown authority request {tag}")


def encode_ok(body: bytes = b"") -> bytes:
    return b"\x00" + bare.encode_bytes(body)


def encode_refusal(reason: str) -> bytes:
    return b"\x01" + bare.encode_string(reason)


def decode_reply(payload: bytes) -> tuple:
    """(True, body bytes) or (False, reason str)."""
    reader = bare.Reader(payload)
    tag = reader.u8()
    if tag not in (0, 1):
        raise DecodeError(f"unknown authority reply {tag}")
    value = reader.bytes() if tag == 0 else reader.string()
    reader.expect_end()
    return tag == 0, value
