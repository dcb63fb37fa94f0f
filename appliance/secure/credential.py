"""Credentials: a project authority's signed statement about one identity.

    Credential = version u8 (01) | project string | subject string (identifier)
               | attributes list<(key string, value string)> (sorted by key)
               | issued_at uint | expires_at uint (Unix seconds) | signature data(64)

The signature is the authority's Ed25519 signature over
`"ockam-appliance/credential/v1:" || every field before the signature`.
"""

from __future__ import annotations

from typing import NamedTuple

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from appliance.secure.errors import SecureError
from appliance.secure.identity import Identity, is_identifier
from appliance.wire import bare
from appliance.wire.errors import DecodeError

VERSION = 1
CONTEXT = b"ockam-appliance/credential/v1:"
MAX_ATTRIBUTES = 32


class CredentialError(SecureError):
    """A credential that is malformed, not signed by the expected authority, or expired."""


class Credential(NamedTuple):
    project: str
    subject: str
    attributes: tuple  # ((key, value), ...) sorted
    issued_at: int
    expires_at: int
    signature: bytes = b""

    def signed_part(self) -> bytes:
        parts = [bytes((VERSION,)), bare.encode_string(self.project), bare.encode_string(self.subject),
                 bare.encode_uint(len(self.attributes))]
        for key, value in self.attributes:
            parts += [bare.encode_string(key), bare.encode_string(value)]
        parts += [bare.encode_uint(self.issued_at), bare.encode_uint(self.expires_at)]
        return b"".join(parts)

    def encode(self) -> bytes:
        return self.signed_part() + bare.encode_bytes(self.signature)

    @classmethod
    def decode(cls, data: bytes) -> "Credential":
        try:
            reader = bare.Reader(data)
            if reader.u8() != VERSION:
                raise CredentialError("unsupported credential version")
            project, subject = reader.string(), reader.string()
            count = reader.uint()
            if count > MAX_ATTRIBUTES:
                raise CredentialError(f"too many attributes ({count})")
            attributes = tuple((reader.string(), reader.string()) for _ in range(count))
            issued_at, expires_at = reader.uint(), reader.uint()
            signature = reader.bytes()
            reader.expect_end()
        except DecodeError as exc:
            raise CredentialError(f"malformed credential: {exc}") from None
        return cls(project, subject, attributes, issued_at, expires_at, signature)

    @property
    def attribute_map(self) -> dict:
        return dict(self.attributes)


def issue(authority: Identity, project: str, subject: str, attributes: dict, now: int, ttl: int) -> Credential:
    if not is_identifier(subject):
        raise CredentialError(f"{subject!r} is not an identifier")
    unsigned = Credential(project, subject, tuple(sorted(attributes.items())), now, now + ttl)
    return unsigned._replace(signature=authority.sign(CONTEXT + unsigned.signed_part()))


def verify(credential: Credential, authority_key: bytes, subject: str, now: int) -> dict:
    """The attributes of a valid, unexpired credential for `subject`, or CredentialError."""
    try:
        VerifyKey(authority_key).verify(CONTEXT + credential.signed_part(), credential.signature)
    except (BadSignatureError, ValueError, TypeError):
        raise CredentialError("credential not signed by the project authority") from None
    if credential.subject != subject:
        raise CredentialError(f"credential is for {credential.subject}, not {subject}")
    if now >= credential.expires_at:
        raise CredentialError("credential expired")
    return credential.attribute_map
