"""UdpPortalMessage, byte-exact (the vectors of docs/PROTOCOL.md)."""

import pytest

from appliance.wire import udp_portal as wire
from appliance.wire.errors import DecodeError


def test_vectors():
    assert wire.encode_datagram(b"hi") == bytes.fromhex("10 02 6869")
    assert wire.encode_datagram(b"") == bytes.fromhex("10 00")
    assert wire.encode_datagram(b"x" * 300)[:3] == bytes.fromhex("10 ac02")
    assert wire.encode_refused("not authorized") == bytes.fromhex("11 0e") + b"not authorized"
    assert wire.decode(bytes.fromhex("10 02 6869")) == (wire.DATAGRAM_TAG, b"hi")
    assert wire.decode(bytes.fromhex("11 01 78")) == (wire.REFUSED_TAG, "x")


def test_the_largest_datagram_round_trips_and_one_byte_more_is_refused():
    big = bytes(range(256)) * 255 + b"\x00" * 227
    assert len(big) == wire.MAX_DATAGRAM
    assert wire.decode(wire.encode_datagram(big)) == (wire.DATAGRAM_TAG, big)
    with pytest.raises(DecodeError, match="UDP carries 65507 at most"):
        wire.decode(wire.encode_datagram(big + b"!"))


@pytest.mark.parametrize("message, why", [
    (b"", "empty"),
    (bytes.fromhex("10 03 6869"), "datagram of 3 bytes in 2"),
    (bytes.fromhex("10 01 6869"), "datagram of 1 bytes in 2"),
    (bytes.fromhex("11 01 7878"), "trailing"),
    (bytes.fromhex("00"), "unknown UDP portal message tag 0"),
    (bytes.fromhex("12 00"), "unknown UDP portal message tag 18"),
])
def test_malformed_messages_are_decode_errors(message, why):
    with pytest.raises(DecodeError, match=why):
        wire.decode(message)
