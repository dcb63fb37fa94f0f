"""A secure channel's handshake as a state machine, sans I/O.

Noise XX whose second and third messages carry identity proofs, then the responder's first
encrypted message, Confirm (wire/secure_channel.py has the bytes). Messages in, messages
out; every legal move is in TRANSITIONS, and any failure moves to FAILED and raises a
HandshakeError: HandshakeRefused when the peer said no (nothing to answer), anything else
when the peer's message was wrong (answer with a refusal).

    initiator: START --start()--> AWAITING_RESPONSE --Response--> AWAITING_CONFIRM --Confirm--> ESTABLISHED
    responder: START --Init--> AWAITING_FINISH --Finish--> ESTABLISHED
"""

from __future__ import annotations

import enum
from typing import Callable

from appliance.secure.channel import ChannelDecryptor, ChannelEncryptor
from appliance.secure.errors import (DecryptError, HandshakeError, HandshakeRefused, PeerNotAuthorized, ReplayError,
                                     SecureError)
from appliance.secure.identity import verify_static_key
from appliance.secure.noise import XXHandshake
from appliance.secure.suites import Suite
from appliance.wire import secure_channel as wire
from appliance.wire.errors import DecodeError


class HandshakeState(enum.Enum):
    START = "start"
    AWAITING_RESPONSE = "awaiting response"  # initiator: Init sent
    AWAITING_FINISH = "awaiting finish"  # responder: Response sent
    AWAITING_CONFIRM = "awaiting confirm"  # initiator: Finish sent, keys split
    ESTABLISHED = "established"
    FAILED = "failed"


H = HandshakeState
START, INIT, RESPONSE, FINISH, CONFIRM = "start", wire.INIT, wire.RESPONSE, wire.FINISH, "confirm"
TRANSITIONS = {
    (True, H.START, START): H.AWAITING_RESPONSE,
    (True, H.AWAITING_RESPONSE, RESPONSE): H.AWAITING_CONFIRM,
    (True, H.AWAITING_CONFIRM, CONFIRM): H.ESTABLISHED,
    (False, H.START, INIT): H.AWAITING_FINISH,
    (False, H.AWAITING_FINISH, FINISH): H.ESTABLISHED,
}  # (initiator?, state, event) -> state

Prove = Callable[[bytes], bytes]  # our Noise static public key -> our encoded IdentityProof


class ChannelHandshake:
    """One side's handshake. `prove` makes our identity proof; `authorized` (identifiers)
    limits whom we accept. Once ESTABLISHED: `peer`, `credentials`, `encryptor`, `decryptor`."""

    def __init__(self, suite: Suite, initiator: bool, static_private: bytes, prove: Prove, authorized=None):
        self.suite = suite
        self.initiator = initiator
        self.state = H.START
        self.peer: str | None = None
        self.credentials: tuple = ()
        self.encryptor: ChannelEncryptor | None = None
        self.decryptor: ChannelDecryptor | None = None
        self._noise: XXHandshake | None = XXHandshake(suite, initiator, static_private)
        self._prove = prove
        self._authorized = authorized

    def _move(self, event) -> None:
        try:
            self.state = TRANSITIONS[self.initiator, self.state, event]
        except KeyError:
            previous, self.state = self.state, H.FAILED
            raise HandshakeError(f"unexpected handshake message in state {previous.value}") from None

    def start(self) -> bytes:
        """Initiator: the Init message."""
        self._move(START)
        return wire.encode_init(self.suite.id, self._noise.write_message(b""))

    def receive_init(self, noise_message: bytes) -> bytes:
        """Responder: Noise message 1 (the listener decoded the Init); returns the Response."""
        return self._guarded(self._on_init, noise_message)

    def receive(self, message: bytes) -> bytes | None:
        """The peer's next message; returns what to send back, if anything."""
        return self._guarded(self._on_message, message)

    def _guarded(self, step, message):
        try:
            return step(message)
        except (SecureError, DecodeError) as exc:
            self.state = H.FAILED
            self._noise = None
            if isinstance(exc, HandshakeError):
                raise
            raise HandshakeError(str(exc)) from None

    def _on_init(self, noise_message: bytes) -> bytes:
        self._move(INIT)
        self._noise.read_message(noise_message)
        return wire.encode_step(wire.RESPONSE, self._noise.write_message(self._prove(self._noise.s[1])))

    def _on_message(self, message: bytes) -> bytes | None:
        if self.state is H.AWAITING_CONFIRM:
            return self._on_confirm(message)
        kind, body = wire.decode_step(message)
        if kind == wire.REFUSE:
            raise HandshakeRefused(f"refused by the peer: {body}")
        self._move(kind)
        self._verify(self._noise.read_message(body))
        if kind == RESPONSE:
            finish = wire.encode_step(wire.FINISH, self._noise.write_message(self._prove(self._noise.s[1])))
            self._split()
            return finish
        self._split()  # responder, FINISH
        return self.encryptor.encrypt(wire.CONFIRM_MESSAGE)

    def _on_confirm(self, message: bytes) -> None:
        try:
            plaintext = self.decryptor.decrypt(message)
        except (DecryptError, ReplayError):
            try:
                kind, body = wire.decode_step(message)  # not encrypted: it may be a refusal
            except DecodeError:
                kind = None
            if kind == wire.REFUSE:
                raise HandshakeRefused(f"refused by the peer: {body}") from None
            raise HandshakeError("unexpected message instead of the confirmation") from None
        if wire.decode_channel_message(plaintext)[0] != wire.CONFIRM:
            raise HandshakeError("the responder did not confirm the channel")
        self._move(CONFIRM)

    def _verify(self, proof_bytes: bytes) -> None:
        try:
            proof = wire.IdentityProof.decode(proof_bytes)
        except DecodeError as exc:
            raise HandshakeError(f"bad identity proof: {exc}") from None
        self.peer = verify_static_key(proof.identity_key, self._noise.rs, proof.signature)
        if self._authorized and self.peer not in self._authorized:
            raise PeerNotAuthorized(f"identity {self.peer} is not authorized")
        self.credentials = proof.credentials

    def _split(self) -> None:
        send_key, receive_key = self._noise.split()
        self.encryptor = ChannelEncryptor(self.suite, send_key)
        self.decryptor = ChannelDecryptor(self.suite, receive_key)
        self._noise = None  # keys are split: forget the handshake secrets
