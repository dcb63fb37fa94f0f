"""Secure channel messages: the handshake envelope, the identity proof, the inner message.

Handshake (to the listener, then between the two channel ends):
    01 | version u8 (01) | suite u8 | Noise XX message 1       initiator -> listener
    02 | Noise XX message 2 (payload: IdentityProof)           responder -> initiator
    03 | Noise XX message 3 (payload: IdentityProof)           initiator -> responder
    04 | string reason                                          refusal, either way (plaintext)
Data: `nonce u64 BE | AEAD ciphertext` of a ChannelMessage (no type byte; see secure/channel.py).
The responder's first data message is CONFIRM: the initiator counts the channel as
established only once it has authenticated that (or fails on a refusal instead).
"""

from __future__ import annotations

from typing import Final, NamedTuple

from appliance.wire import bare
from appliance.wire.address import Route
from appliance.wire.buffer import Buffer
from appliance.wire.errors import DecodeError
from appliance.wire.transport import decode_routed, encode_head

VERSION: Final = 1
INIT, RESPONSE, FINISH, REFUSE = 1, 2, 3, 4
MAX_CREDENTIALS: Final = 16


def encode_init(suite_id: int, noise_message: Buffer) -> bytes:
    return bytes((INIT, VERSION, suite_id)) + noise_message


def decode_init(message: Buffer) -> tuple:
    """(suite id, Noise message 1)."""
    if len(message) < 3 or message[0] != INIT:
        raise DecodeError("not a secure channel request")
    if message[1] != VERSION:
        raise DecodeError(f"unsupported secure channel version {message[1]}")
    return message[2], message[3:]


def encode_step(kind: int, noise_message: Buffer) -> bytes:
    return bytes((kind,)) + noise_message


def encode_refusal(reason: str) -> bytes:
    return bytes((REFUSE,)) + bare.encode_string(reason[:500])


def decode_step(message: Buffer) -> tuple:
    """(kind, body): body is the Noise message, or the reason text for a refusal."""
    if not message or message[0] not in (RESPONSE, FINISH, REFUSE):
        raise DecodeError("not a secure channel handshake message")
    if message[0] == REFUSE:
        return REFUSE, bare.decode_string(message[1:])
    return message[0], message[1:]


class IdentityProof(NamedTuple):
    identity_key: bytes  # Ed25519 public key
    signature: bytes     # over the Noise static key (secure/identity.py)
    credentials: tuple = ()

    def encode(self) -> bytes:
        return b"".join((bytes((VERSION,)), bare.encode_bytes(self.identity_key), bare.encode_bytes(self.signature),
                         bare.encode_uint(len(self.credentials)),
                         *(bare.encode_bytes(c) for c in self.credentials)))

    @classmethod
    def decode(cls, data: Buffer) -> "IdentityProof":
        reader = bare.Reader(data)
        if reader.u8() != VERSION:
            raise DecodeError("unsupported identity proof version")
        key, signature = reader.bytes(), reader.bytes()
        if len(key) != 32 or len(signature) != 64:
            raise DecodeError("identity proof has a key or signature of the wrong size")
        count = reader.uint()
        if count > MAX_CREDENTIALS:
            raise DecodeError(f"too many credentials ({count})")
        credentials = tuple(reader.bytes() for _ in range(count))
        reader.expect_end()
        return cls(key, signature, credentials)


PAYLOAD: Final = 0
CLOSE: Final = 1
CONFIRM: Final = 2
PROBE: Final = 3
PROBE_ACK: Final = 4
CREDENTIAL: Final = 5
SIGNALS: Final = (CLOSE, CONFIRM, PROBE, PROBE_ACK)  # one byte, nothing after it


def encode_payload(onward: Route, return_route: Route, payload: Buffer) -> bytes:
    return payload_head(onward, return_route, len(payload)) + payload


def payload_head(onward: Route, return_route: Route, payload_length: int) -> bytes:
    """A PAYLOAD message up to its payload: the sender encrypts head and payload as one
    without joining them first."""
    return encode_head(onward, return_route, payload_length, tag=b"\x00")


CLOSE_MESSAGE: Final = b"\x01"
CONFIRM_MESSAGE: Final = b"\x02"
PROBE_MESSAGE: Final = b"\x03"  # are you still there? (the peer answers PROBE_ACK)
PROBE_ACK_MESSAGE: Final = b"\x04"


def encode_credential(credential: Buffer) -> bytes:
    """A fresh credential of the sender, presented inside the channel (`05 | data credential`)."""
    return bytes((CREDENTIAL,)) + bare.encode_bytes(credential)


def decode_channel_message(data, hint: int = 0) -> tuple:
    """(PAYLOAD, onward, return, payload, the routes' length), (CREDENTIAL, (), (), credential,
    0), or (a signal: CLOSE, CONFIRM, PROBE, PROBE_ACK, (), (), b"", 0). `hint`: the routes'
    length of the channel's last PAYLOAD (wire/transport.py decode_routed)."""
    if not data:
        raise DecodeError("empty channel message")
    tag = data[0]
    if tag == PAYLOAD:
        # the payload, a view: `data` is the decrypted message, held by nothing else
        return (PAYLOAD, *decode_routed(memoryview(data), hint, copy=False))
    if tag == CREDENTIAL:
        reader = bare.Reader(data, 1)
        credential = reader.bytes()
        reader.expect_end()
        return CREDENTIAL, (), (), credential, 0
    if tag in SIGNALS and len(data) == 1:
        return tag, (), (), b"", 0
    if tag in SIGNALS:
        raise DecodeError(f"channel message {tag} has trailing bytes")
    raise DecodeError(f"unknown channel message {tag}")
