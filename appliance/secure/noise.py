"""The Noise XX handshake (noiseprotocol.org, rev 34) as a sans-IO state machine.

    -> e
    <- e, ee, s, es
    -> s, se

`write_message` / `read_message` alternate as the pattern says; after the third message
`split()` gives each side its sending and receiving keys (standard order: the initiator
sends with the first). Ephemeral keys can be injected for test vectors.
"""

from __future__ import annotations

import os

from appliance.secure.errors import DecryptError, HandshakeError
from appliance.secure.suites import DHLEN, HASHLEN, TAGLEN, Suite, dh, hkdf, sha256, x25519_keypair

PATTERN = (("e",), ("e", "ee", "s", "es"), ("s", "se"))
MAX_MESSAGE = 65535


class CipherState:
    __slots__ = ("suite", "key", "nonce")

    def __init__(self, suite: Suite, key: bytes | None = None):
        self.suite = suite
        self.key = key
        self.nonce = 0

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        if self.key is None:
            return plaintext
        ciphertext = bytes(self.suite.encrypt(self.key, self.nonce, ad, plaintext))
        self.nonce += 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        if self.key is None:
            return ciphertext
        plaintext = bytes(self.suite.decrypt(self.key, self.nonce, ad, ciphertext))  # keys, proofs: immutable
        self.nonce += 1
        return plaintext


class SymmetricState:
    def __init__(self, suite: Suite):
        name = suite.protocol_name
        self.h = name.ljust(HASHLEN, b"\0") if len(name) <= HASHLEN else sha256(name)
        self.ck = self.h
        self.cipher = CipherState(suite)
        self.suite = suite

    def mix_key(self, ikm: bytes) -> None:
        self.ck, temp_k = hkdf(self.ck, ikm, 2)
        self.cipher = CipherState(self.suite, temp_k[:32])

    def mix_hash(self, data: bytes) -> None:
        self.h = sha256(self.h + data)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = self.cipher.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        try:
            plaintext = self.cipher.decrypt_with_ad(self.h, ciphertext)
        except DecryptError:
            raise HandshakeError("handshake message failed authentication") from None
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple:
        k1, k2 = hkdf(self.ck, b"", 2)
        return k1[:32], k2[:32]


class XXHandshake:
    def __init__(self, suite: Suite, initiator: bool, static_private: bytes, prologue: bytes = b"",
                 ephemeral_private: bytes | None = None):
        self.suite = suite
        self.initiator = initiator
        self.s = x25519_keypair(static_private)
        self._ephemeral_private = ephemeral_private
        self.e = None
        self.re: bytes | None = None
        self.rs: bytes | None = None
        self.state = SymmetricState(suite)
        self.state.mix_hash(prologue)
        self.step = 0  # index of the next message in PATTERN

    @property
    def complete(self) -> bool:
        return self.step == len(PATTERN)

    @property
    def handshake_hash(self) -> bytes:
        return self.state.h

    def _is_my_turn(self) -> bool:
        return (self.step % 2 == 0) == self.initiator

    def write_message(self, payload: bytes = b"") -> bytes:
        if self.complete or not self._is_my_turn():
            raise HandshakeError("not this side's turn to write a handshake message")
        out = bytearray()
        for token in PATTERN[self.step]:
            if token == "e":
                self.e = x25519_keypair(self._ephemeral_private or os.urandom(32))
                out += self.e[1]
                self.state.mix_hash(self.e[1])
            elif token == "s":
                out += self.state.encrypt_and_hash(self.s[1])
            else:
                self._mix_dh(token)
        out += self.state.encrypt_and_hash(payload)
        self.step += 1
        return bytes(out)

    def read_message(self, message: bytes) -> bytes:
        if self.complete or self._is_my_turn():
            raise HandshakeError("not this side's turn to read a handshake message")
        if len(message) > MAX_MESSAGE:
            raise HandshakeError("handshake message too long")
        pos = 0
        for token in PATTERN[self.step]:
            if token == "e":
                if len(message) - pos < DHLEN:
                    raise HandshakeError("handshake message truncated (ephemeral key)")
                self.re = bytes(message[pos:pos + DHLEN])
                pos += DHLEN
                self.state.mix_hash(self.re)
            elif token == "s":
                size = DHLEN + (TAGLEN if self.state.cipher.key is not None else 0)
                if len(message) - pos < size:
                    raise HandshakeError("handshake message truncated (static key)")
                self.rs = self.state.decrypt_and_hash(bytes(message[pos:pos + size]))
                pos += size
            else:
                self._mix_dh(token)
        if self.state.cipher.key is not None and len(message) - pos < TAGLEN:
            raise HandshakeError("handshake message truncated (payload)")
        payload = self.state.decrypt_and_hash(bytes(message[pos:]))
        self.step += 1
        return payload

    def _mix_dh(self, token: str) -> None:
        # ee: both ephemerals; es: initiator's e with responder's s; se: initiator's s with responder's e
        if token == "ee":
            self.state.mix_key(dh(self.e[0], self.re))
        elif token == "es":
            self.state.mix_key(dh(self.e[0], self.rs) if self.initiator else dh(self.s[0], self.re))
        elif token == "se":
            self.state.mix_key(dh(self.s[0], self.re) if self.initiator else dh(self.e[0], self.rs))

    def split(self) -> tuple:
        """(sending key, receiving key) for this side."""
        if not self.complete:
            raise HandshakeError("handshake not complete")
        k1, k2 = self.state.split()
        return (k1, k2) if self.initiator else (k2, k1)
