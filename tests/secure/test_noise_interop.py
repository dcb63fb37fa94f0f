"""Handshake and transport messages both ways against an independent implementation."""

import os

import pytest

from appliance.secure.noise import CipherState, XXHandshake
from appliance.secure.suites import AESGCM, CHACHAPOLY, aesgcm_available

noise_connection = pytest.importorskip("noise.connection")
NoiseConnection, Keypair = noise_connection.NoiseConnection, noise_connection.Keypair


def their_side(suite, initiator: bool, static: bytes):
    conn = NoiseConnection.from_name(suite.protocol_name)
    conn.set_keypair_from_private_bytes(Keypair.STATIC, static)
    conn.set_as_initiator() if initiator else conn.set_as_responder()
    conn.start_handshake()
    return conn


@pytest.mark.parametrize("suite", [AESGCM, CHACHAPOLY], ids=["aesgcm", "chachapoly"])
@pytest.mark.parametrize("we_initiate", [True, False], ids=["we-initiate", "they-initiate"])
def test_handshake_and_transport_with_noiseprotocol(suite, we_initiate):
    if suite is AESGCM and not aesgcm_available():
        pytest.skip("AES-GCM needs AES-NI / ARMv8 crypto")
    ours = XXHandshake(suite, we_initiate, os.urandom(32))
    theirs = their_side(suite, not we_initiate, os.urandom(32))
    payloads = [b"", b"responder identity proof", b"initiator identity proof"]
    for i, payload in enumerate(payloads):
        if (i % 2 == 0) == we_initiate:
            assert theirs.read_message(ours.write_message(payload)) == payload
        else:
            assert ours.read_message(theirs.write_message(payload)) == payload
    assert theirs.handshake_finished and ours.complete
    assert ours.handshake_hash == theirs.get_handshake_hash()
    send_key, recv_key = ours.split()
    send, recv = CipherState(suite, send_key), CipherState(suite, recv_key)
    for n in range(5):
        message = os.urandom(100 + n)
        assert theirs.decrypt(send.encrypt_with_ad(b"", message)) == message
        assert recv.decrypt_with_ad(b"", theirs.encrypt(message)) == message
