"""Our direct libsodium calls against PyNaCl's checked bindings: same bytes, same refusals."""

import os

import nacl.bindings as sodium
import pytest

from appliance.secure import aead
from appliance.secure.errors import DecryptError

PAIRS = [
    (aead.chacha20poly1305_encrypt, aead.chacha20poly1305_decrypt,
     sodium.crypto_aead_chacha20poly1305_ietf_encrypt),
]
if aead.aes256gcm_available():
    PAIRS.append((aead.aes256gcm_encrypt, aead.aes256gcm_decrypt, sodium.crypto_aead_aes256gcm_encrypt))


@pytest.mark.parametrize("encrypt,decrypt,reference", PAIRS, ids=[p[2].__name__ for p in PAIRS])
@pytest.mark.parametrize("size", [0, 1, 30, 4096, 128 * 1024 + 3])
def test_same_bytes_as_pynacl_and_round_trip(encrypt, decrypt, reference, size):
    key, nonce, ad, plaintext = os.urandom(32), os.urandom(12), os.urandom(size % 7), os.urandom(size)
    sealed = encrypt(plaintext, ad, nonce, key)
    assert sealed == reference(plaintext, ad, nonce, key)
    assert decrypt(sealed, 0, ad, nonce, key) == plaintext
    packet = b"nonce:8!" + sealed  # read in place after its nonce, no view cut to skip it
    assert decrypt(packet, 8, ad, nonce, key) == plaintext
    framed = memoryview(b"frame" + packet)[5:]  # a view into a received frame, likewise
    assert decrypt(framed, 8, ad, nonce, key) == plaintext
    assert encrypt(plaintext, ad, nonce, key, prefix=b"nonce:8!") == b"nonce:8!" + sealed
    head = b"\x00\x01\x00\x04head"  # encrypted with the plaintext as one message, never joined to it
    assert encrypt(plaintext, ad, nonce, key, prefix=b"nonce:8!", head=head) == \
        b"nonce:8!" + reference(head + plaintext, ad, nonce, key)


@pytest.mark.parametrize("encrypt,decrypt,reference", PAIRS, ids=[p[2].__name__ for p in PAIRS])
def test_tampered_truncated_or_wrong_key_is_refused(encrypt, decrypt, reference):
    key, nonce = os.urandom(32), os.urandom(12)
    sealed = bytearray(encrypt(b"attack at dawn", b"", nonce, key))
    sealed[3] ^= 1
    short, forged = "ciphertext is shorter than its tag", "authentication failed"
    for bad, start, k, error in ((bytes(sealed), 0, key, forged), (bytes(sealed[:15]), 0, key, short),
                                 (b"", 0, key, short), (b"nonce:8!" + bytes(sealed[:15]), 8, key, short),
                                 (b"nonce:8", 8, key, short), (encrypt(b"x", b"", nonce, key), 0, os.urandom(32), forged)):
        with pytest.raises(DecryptError, match=f"^{error}$"):
            decrypt(bad, start, b"", nonce, k)
