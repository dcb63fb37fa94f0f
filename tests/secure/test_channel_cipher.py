"""Channel data: every message once, in any order within the window, across rekeys."""

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.secure.channel import REKEY_INTERVAL, WINDOW, ChannelDecryptor, ChannelEncryptor
from appliance.secure.errors import DecryptError, ReplayError
from appliance.secure.suites import CHACHAPOLY, default_suite


def pair(suite=None):
    suite = suite or default_suite()
    key = os.urandom(32)
    return ChannelEncryptor(suite, key), ChannelDecryptor(suite, key)


def test_round_trip_across_many_rekeys():
    enc, dec = pair()
    for i in range(REKEY_INTERVAL * 5 + 3):
        assert dec.decrypt(enc.encrypt(b"m%d" % i)) == b"m%d" % i
    assert dec.epoch == 5


def test_key_actually_changes_at_the_rekey_interval():
    enc, _ = pair(CHACHAPOLY)
    first = enc.key
    for _ in range(REKEY_INTERVAL + 1):
        enc.encrypt(b"x")
    assert enc.key != first


def test_duplicates_are_rejected():
    enc, dec = pair()
    packet = enc.encrypt(b"once")
    dec.decrypt(packet)
    with pytest.raises(ReplayError, match="already"):
        dec.decrypt(packet)


def test_reordering_within_the_window_is_accepted_across_an_epoch_boundary():
    enc, dec = pair()
    packets = [enc.encrypt(b"%d" % i) for i in range(REKEY_INTERVAL + 10)]
    order = list(range(len(packets)))
    random.Random(1).shuffle(order)
    # deliver the newest first so the rest arrive "late" but inside the window
    order.remove(len(packets) - 1)
    for i in [len(packets) - 1] + order:
        if len(packets) - 1 - i < WINDOW:
            assert dec.decrypt(packets[i]) == b"%d" % i


def test_too_old_is_rejected():
    enc, dec = pair()
    old = enc.encrypt(b"old")
    for _ in range(WINDOW + 1):
        dec.decrypt(enc.encrypt(b"new"))
    with pytest.raises(ReplayError):
        dec.decrypt(old)


def test_tampered_and_truncated_packets_are_rejected_and_change_nothing():
    enc, dec = pair()
    packet = bytearray(enc.encrypt(b"payload"))
    packet[-1] ^= 1
    with pytest.raises(DecryptError):
        dec.decrypt(bytes(packet))
    with pytest.raises(DecryptError):
        dec.decrypt(bytes(packet[:20]))
    forged = (2**40).to_bytes(8, "big") + os.urandom(40)  # far-future nonce, garbage body
    with pytest.raises(ReplayError):
        dec.decrypt(forged)
    packet[-1] ^= 1
    assert dec.decrypt(bytes(packet)) == b"payload"  # the real one still works: state did not move
    assert dec.highest == 0


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_decryptor_is_total(data):
    _, dec = pair()
    try:
        dec.decrypt(data)
    except (DecryptError, ReplayError):
        pass
