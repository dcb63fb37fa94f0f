"""The data phase of a secure channel: explicit nonces, a replay window, periodic rekeying.

Each packet is `nonce (u64 big-endian) || AEAD(key_epoch, nonce, ad="", plaintext)`. The key
changes every REKEY_INTERVAL nonces by Noise's REKEY, so the key of nonce n is the initial
key rekeyed n // REKEY_INTERVAL times; both sides derive it, nothing is sent for it.
The receiver accepts each nonce once, within a sliding window of WINDOW nonces below the
highest it has authenticated; state only moves after a packet authenticates.
"""

from __future__ import annotations

import struct
from typing import Final

from appliance.secure.errors import DecryptError, ReplayError, SecureError
from appliance.secure.suites import MAX_NONCE, TAGLEN, Suite

REKEY_INTERVAL: Final = 32
WINDOW: Final = 64
MAX_EPOCH_JUMP: Final = 1024  # bounds the rekeying work one packet can cause
NONCE: Final = struct.Struct(">Q")


class ChannelEncryptor:
    __slots__ = ("suite", "key", "nonce")

    def __init__(self, suite: Suite, key: bytes):
        self.suite = suite
        self.key = key
        self.nonce = 0

    def encrypt(self, plaintext, head: bytes = b"") -> bytearray:
        """The packet of the message `head` + `plaintext` (see Suite.encrypt)."""
        n = self.nonce
        if n >= MAX_NONCE - 1:
            raise SecureError("channel nonces exhausted: open a new channel")
        if n and n % REKEY_INTERVAL == 0:
            self.key = self.suite.rekey(self.key)
        self.nonce = n + 1
        return self.suite.encrypt(self.key, n, b"", plaintext, NONCE.pack(n), head)


class ChannelDecryptor:
    __slots__ = ("suite", "key", "previous_key", "epoch", "highest", "seen")

    def __init__(self, suite: Suite, key: bytes):
        self.suite = suite
        self.key = key
        self.previous_key: bytes | None = None
        self.epoch = 0
        self.highest = -1
        self.seen = 0  # bit i set: nonce (highest - i) was accepted

    def decrypt(self, packet) -> bytearray:
        if len(packet) < NONCE.size + TAGLEN:
            raise DecryptError(f"packet of {len(packet)} bytes is too short")
        (n,) = NONCE.unpack_from(packet)
        if n <= self.highest:
            self._check_window(n)
        epoch = n // REKEY_INTERVAL
        if epoch == self.epoch:
            key, previous = self.key, self.previous_key
        elif epoch == self.epoch - 1 and self.previous_key is not None:
            key, previous = self.previous_key, None
        elif self.epoch < epoch <= self.epoch + MAX_EPOCH_JUMP:
            previous, key = self.key, self.suite.rekey(self.key)
            for _ in range(epoch - self.epoch - 1):
                previous, key = key, self.suite.rekey(key)
        else:
            raise ReplayError(f"nonce {n} is outside the key window")
        plaintext = self.suite.decrypt(key, n, b"", packet, NONCE.size)
        if epoch > self.epoch:
            self.epoch, self.key, self.previous_key = epoch, key, previous
        self._accept(n)
        return plaintext

    def _check_window(self, n: int) -> None:
        """For a nonce at or below the highest accepted one."""
        age = self.highest - n
        if age >= WINDOW:
            raise ReplayError(f"nonce {n} is older than the replay window")
        if self.seen >> age & 1:
            raise ReplayError(f"nonce {n} was already received")

    def _accept(self, n: int) -> None:
        if n > self.highest:
            shift = n - self.highest
            self.seen = ((self.seen << shift) | 1) & ((1 << WINDOW) - 1) if shift < WINDOW else 1
            self.highest = n
        else:
            self.seen |= 1 << (self.highest - n)
