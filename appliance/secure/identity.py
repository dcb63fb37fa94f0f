"""Identities: an Ed25519 key whose hash names it (`I` + 40 hex), and the proof that binds
a Noise static key to it during a handshake."""

from __future__ import annotations

import hashlib

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from appliance.secure.errors import HandshakeError, IdentityError

STATIC_KEY_CONTEXT = b"ockam-appliance/noise-static-key/v1:"
IDENTIFIER_BYTES = 20


def identifier_of(public_key: bytes) -> str:
    return "I" + hashlib.sha256(public_key).digest()[:IDENTIFIER_BYTES].hex()


def is_identifier(text: str) -> bool:
    return len(text) == 1 + 2 * IDENTIFIER_BYTES and text[0] == "I" and \
        all(c in "0123456789abcdef" for c in text[1:])


class Identity:
    __slots__ = ("_signing_key",)

    def __init__(self, signing_key: SigningKey):
        self._signing_key = signing_key

    @classmethod
    def generate(cls) -> "Identity":
        return cls(SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> "Identity":
        if len(seed) != 32:
            raise IdentityError(f"an identity key is 32 bytes, not {len(seed)}")
        return cls(SigningKey(seed))

    @property
    def seed(self) -> bytes:
        return bytes(self._signing_key)

    @property
    def public_key(self) -> bytes:
        return bytes(self._signing_key.verify_key)

    @property
    def identifier(self) -> str:
        return identifier_of(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self._signing_key.sign(message).signature

    def attest_static_key(self, static_public: bytes) -> bytes:
        return self.sign(STATIC_KEY_CONTEXT + static_public)


def verify_static_key(identity_key: bytes, static_public: bytes, signature: bytes) -> str:
    """The identifier whose key signed this Noise static key, or HandshakeError."""
    try:
        VerifyKey(identity_key).verify(STATIC_KEY_CONTEXT + static_public, signature)
    except (BadSignatureError, ValueError, TypeError):
        raise HandshakeError("the peer's identity did not sign its Noise static key") from None
    return identifier_of(identity_key)
