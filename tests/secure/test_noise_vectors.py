"""Noise XX, byte for byte against the cacophony test vectors (copied from ../shared/vectors)."""

import json
from pathlib import Path

import pytest

from appliance.secure.noise import CipherState, XXHandshake
from appliance.secure.suites import AESGCM, CHACHAPOLY, aesgcm_available

VECTORS = json.loads((Path(__file__).parent / "noise_xx_cacophony.json").read_text())["vectors"]
SUITES = {s.protocol_name.decode(): s for s in (AESGCM, CHACHAPOLY)}


@pytest.mark.parametrize("vector", VECTORS, ids=[v["protocol_name"] for v in VECTORS])
def test_cacophony_vector(vector):
    suite = SUITES[vector["protocol_name"]]
    if suite is AESGCM and not aesgcm_available():
        pytest.skip("AES-GCM needs AES-NI / ARMv8 crypto")
    h = bytes.fromhex
    initiator = XXHandshake(suite, True, h(vector["init_static"]), h(vector["init_prologue"]),
                            h(vector["init_ephemeral"]))
    responder = XXHandshake(suite, False, h(vector["resp_static"]), h(vector["resp_prologue"]),
                            h(vector["resp_ephemeral"]))
    messages = vector["messages"]
    for i, message in enumerate(messages[:3]):
        writer, reader = (initiator, responder) if i % 2 == 0 else (responder, initiator)
        ciphertext = writer.write_message(h(message["payload"]))
        assert ciphertext.hex() == message["ciphertext"], f"handshake message {i}"
        assert reader.read_message(ciphertext) == h(message["payload"])
    assert initiator.handshake_hash.hex() == vector["handshake_hash"]
    assert responder.handshake_hash.hex() == vector["handshake_hash"]
    i_send, i_recv = initiator.split()
    r_send, r_recv = responder.split()
    assert (i_send, i_recv) == (r_recv, r_send)
    ciphers = {True: (CipherState(suite, i_send), CipherState(suite, r_recv)),
               False: (CipherState(suite, r_send), CipherState(suite, i_recv))}
    for i, message in enumerate(messages[3:], start=3):
        send, recv = ciphers[i % 2 == 0]
        ciphertext = send.encrypt_with_ad(b"", h(message["payload"]))
        assert ciphertext.hex() == message["ciphertext"], f"transport message {i}"
        assert recv.decrypt_with_ad(b"", ciphertext) == h(message["payload"])
