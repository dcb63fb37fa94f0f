"""Noise cipher suites on PyNaCl: X25519, SHA-256, and AES-256-GCM or ChaCha20-Poly1305."""

from __future__ import annotations

import hashlib
import hmac
import struct
import nacl.bindings as sodium
from nacl.exceptions import RuntimeError as NaclRuntimeError

from appliance.secure import aead
from appliance.secure.errors import HandshakeError, UnknownSuite
from appliance.wire.buffer import Buffer

DHLEN = 32
HASHLEN = 32
TAGLEN = 16
MAX_NONCE = 2**64 - 1


class Suite:
    """One AEAD with its Noise nonce layout; the DH (25519) and hash (SHA-256) are fixed."""

    __slots__ = ("id", "protocol_name", "_encrypt", "_decrypt", "_nonce")

    def __init__(self, suite_id: int, protocol_name: bytes, encrypt, decrypt, nonce):
        self.id = suite_id
        self.protocol_name = protocol_name
        self._encrypt = encrypt
        self._decrypt = decrypt
        self._nonce = nonce

    def __repr__(self) -> str:
        return f"Suite({self.protocol_name.decode()})"

    def encrypt(self, key: bytes, nonce: int, ad: bytes, plaintext, prefix: bytes = b"",
                head: bytes = b"") -> bytearray:
        """`prefix` + AEAD(`head` + `plaintext`), in one new buffer (secure/aead.py)."""
        return self._encrypt(plaintext, ad, self._nonce(nonce), key, prefix, head)

    def decrypt(self, key: bytes, nonce: int, ad: bytes, ciphertext, start: int = 0) -> bytearray:
        """Of the ciphertext and tag at ciphertext[start:]. Raises DecryptError when it is
        truncated or fails authentication."""
        return self._decrypt(ciphertext, start, ad, self._nonce(nonce), key)

    def rekey(self, key: bytes) -> bytes:
        """Noise REKEY: the first 32 bytes of ENCRYPT(k, 2^64-1, empty, 32 zero bytes)."""
        return bytes(memoryview(self.encrypt(key, MAX_NONCE, b"", bytes(32)))[:32])


_BE_NONCE = struct.Struct(">4xQ")  # AES-GCM: 32 zero bits, then the nonce big-endian
_LE_NONCE = struct.Struct("<4xQ")  # ChaChaPoly: 32 zero bits, then the nonce little-endian

AESGCM = Suite(0, b"Noise_XX_25519_AESGCM_SHA256", aead.aes256gcm_encrypt, aead.aes256gcm_decrypt,
               _BE_NONCE.pack)
CHACHAPOLY = Suite(1, b"Noise_XX_25519_ChaChaPoly_SHA256", aead.chacha20poly1305_encrypt,
                   aead.chacha20poly1305_decrypt, _LE_NONCE.pack)
SUITES = {AESGCM.id: AESGCM, CHACHAPOLY.id: CHACHAPOLY}
SUITE_NAMES = {"aesgcm": AESGCM, "chachapoly": CHACHAPOLY}


def aesgcm_available() -> bool:
    return aead.aes256gcm_available()


def default_suite() -> Suite:
    """AES-256-GCM where the CPU accelerates it, ChaCha20-Poly1305 elsewhere."""
    return AESGCM if aesgcm_available() else CHACHAPOLY


def suite_by_id(suite_id: int) -> Suite:
    suite = SUITES.get(suite_id)
    if suite is None:
        raise UnknownSuite(f"unknown cipher suite {suite_id}")
    if suite is AESGCM and not aesgcm_available():
        raise UnknownSuite("AES-256-GCM is not available on this CPU")
    return suite


def suite_by_name(name: str) -> Suite:
    suite = SUITE_NAMES.get(name.lower())
    if suite is None:
        raise UnknownSuite(f"unknown cipher suite {name!r} (use aesgcm or chachapoly)")
    return suite_by_id(suite.id)


def sha256(data: Buffer) -> bytes:
    return hashlib.sha256(data).digest()


def hkdf(chaining_key: Buffer, ikm: Buffer, outputs: int) -> tuple:
    """Noise's HKDF with HMAC-SHA256: two or three 32-byte outputs."""
    temp = hmac.digest(chaining_key, ikm, "sha256")
    out1 = hmac.digest(temp, b"\x01", "sha256")
    out2 = hmac.digest(temp, out1 + b"\x02", "sha256")
    if outputs == 2:
        return out1, out2
    return out1, out2, hmac.digest(temp, out2 + b"\x03", "sha256")


def x25519_keypair(private: bytes) -> tuple:
    return private, sodium.crypto_scalarmult_base(private)


def dh(private: bytes, public: bytes) -> bytes:
    try:
        return sodium.crypto_scalarmult(private, public)
    except (NaclRuntimeError, ValueError, TypeError) as exc:
        raise HandshakeError("invalid X25519 public key") from exc
