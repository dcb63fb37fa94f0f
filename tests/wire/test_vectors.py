"""Byte-exact vectors from Ockam (see docs/PROTOCOL.md) and our own wire formats."""

import pytest

from appliance.wire import bare, portal, relay
from appliance.wire.address import LOCAL, TCP, Address, encode_route
from appliance.wire.errors import DecodeError
from appliance.wire.transport import TransportMessage

OCKAM_TRANSPORT_VECTOR = bytes.fromhex(
    "01 02 01 0e 3132372e302e302e313a34303030 00 07 7072696e746572"
    " 01 01 0e 3132372e302e302e313a33303030 05 68656c6c6f".replace(" ", ""))


def test_transport_message_matches_ockam_vector():
    msg = TransportMessage(
        onward=(Address(TCP, b"127.0.0.1:4000"), Address(LOCAL, b"printer")),
        return_route=(Address(TCP, b"127.0.0.1:3000"),),
        payload=b"hello")
    assert msg.encode() == OCKAM_TRANSPORT_VECTOR
    assert TransportMessage.decode(OCKAM_TRANSPORT_VECTOR) == msg


def test_message_send_payload_is_a_bare_string():
    assert bare.encode_string("hello") == bytes.fromhex("0568656c6c6f")


def test_relay_registration_vector():
    assert relay.encode_request("forward_to_n3") == bytes.fromhex("0d666f72776172645f746f5f6e33")
    assert relay.decode_request(bytes.fromhex("0d666f72776172645f746f5f6e33")) == ("forward_to_n3", b"")
    secret = bytes(range(16))
    with_secret = bytes.fromhex("0d666f72776172645f746f5f6e33" "10" "000102030405060708090a0b0c0d0e0f")
    assert relay.encode_request("forward_to_n3", secret) == with_secret
    assert relay.decode_request(with_secret) == ("forward_to_n3", secret)


def test_relay_reply_encoding():
    secret = bytes(range(16))
    ok = bytes.fromhex("000d666f72776172645f746f5f6e33" "10" "000102030405060708090a0b0c0d0e0f")
    assert relay.RelayReply(True, "forward_to_n3", secret).encode() == ok
    assert relay.RelayReply.decode(ok) == relay.RelayReply(True, "forward_to_n3", secret)
    assert relay.RelayReply.decode(b"\x01\x03bad") == relay.RelayReply(False, "bad")


@pytest.mark.parametrize("payload", [
    bytes.fromhex("0d666f72776172645f746f5f6e33" "03" "010203"),  # a secret of the wrong size
    bytes.fromhex("0d666f72776172645f746f5f6e33" "10" "0001"),  # truncated
    bytes.fromhex("0d666f72776172645f746f5f6e33" "00" "ff"),  # trailing bytes
])
def test_bad_relay_requests_are_decode_errors(payload):
    with pytest.raises(DecodeError):
        relay.decode_request(payload)


def test_portal_payload_vector():
    assert portal.encode_payload(b"\x05\x05") == bytes.fromhex("03020505")
    assert portal.decode(bytes.fromhex("03020505")) == (3, b"\x05\x05")


@pytest.mark.parametrize("message,tag", [(portal.PING, 0), (portal.PONG, 1), (portal.DISCONNECT, 2)])
def test_portal_control_messages(message, tag):
    assert message == bytes((tag,))
    assert portal.decode(message) == (tag, b"")


@pytest.mark.parametrize("value,encoded", [
    (0, "00"), (1, "01"), (127, "7f"), (128, "8001"), (300, "ac02"), (16384, "808001"),
    (2**64 - 1, "ffffffffffffffffff01"),
])
def test_uleb128_varints(value, encoded):
    assert bare.encode_uint(value) == bytes.fromhex(encoded)
    assert bare.Reader(bytes.fromhex(encoded)).uint() == value


def test_address_text_forms():
    assert Address.parse("echo") == Address(LOCAL, b"echo")
    assert Address.parse("1#127.0.0.1:4000") == Address(TCP, b"127.0.0.1:4000")
    assert str(Address(LOCAL, b"f3a318045e7b0420d02d5489ff75f126")) == "0#f3a318045e7b0420d02d5489ff75f126"
    assert len(Address.random_local().inner) == 32


def test_route_encoding():
    assert encode_route(()) == b"\x00"
    assert encode_route((Address(LOCAL, b"a"),)) == b"\x01\x00\x01a"


def test_portal_credit_and_end_vectors():
    assert portal.encode_credit(1 << 20) == bytes.fromhex("04808040")
    assert portal.decode(bytes.fromhex("04808040")) == (portal.CREDIT_TAG, 1 << 20)
    assert portal.END == bytes.fromhex("05")
    assert portal.decode(b"\x05") == (portal.END_TAG, b"")


@pytest.mark.parametrize("message, error", [
    (b"\x04\x00", "credit of 0 bytes is out of range"),
    (bytes.fromhex("04 8080808020"), "credit of 8589934592 bytes is out of range"),
    (b"\x04", "truncated"),
    (b"\x04\x01\x00", "trailing"),
    (b"\x05\x00", "portal message 5 has 1 trailing bytes"),
    (b"\x06", "truncated"),  # Origin without its addresses
    (b"\x07", "unknown portal message tag 7"),
])
def test_bad_portal_messages_are_typed_errors(message, error):
    from appliance.wire.errors import DecodeError
    with pytest.raises(DecodeError, match=error):
        portal.decode(message)


def test_channel_probe_messages_are_one_byte_signals():
    from appliance.wire import secure_channel as sc
    assert (sc.PROBE_MESSAGE, sc.PROBE_ACK_MESSAGE) == (b"\x03", b"\x04")
    assert sc.decode_channel_message(b"\x03") == (sc.PROBE, (), (), b"", 0)
    assert sc.decode_channel_message(b"\x04") == (sc.PROBE_ACK, (), (), b"", 0)
    from appliance.wire.errors import DecodeError
    with pytest.raises(DecodeError, match="channel message 3 has trailing bytes"):
        sc.decode_channel_message(b"\x03\x00")


def test_channel_payload_message_decodes_its_routes_once_per_channel():
    """`00 | onward | return | len | payload`: the transport message's layout after another
    first byte, and the same hint (the routes' length of the channel's last PAYLOAD)."""
    from appliance.wire import secure_channel as sc
    onward, back = (Address(0, b"ab"),), (Address(1, b"c"),)
    message = sc.encode_payload(onward, back, b"payload")
    assert message == bytes.fromhex("00 01 00 02 6162 01 01 01 63 07") + b"payload"
    kind, got_onward, got_back, payload, hint = sc.decode_channel_message(message)
    assert (kind, got_onward, got_back, bytes(payload), hint) == (sc.PAYLOAD, onward, back, b"payload", 9)
    assert isinstance(payload, memoryview)  # a view of the decrypted message, not a copy
    again = sc.decode_channel_message(sc.encode_payload(onward, back, b"next"), hint)
    assert again[:3] == (sc.PAYLOAD, onward, back) and bytes(again[3]) == b"next" and again[4] == 9


def test_channel_credential_message():
    from appliance.wire import secure_channel as sc
    assert sc.encode_credential(b"\xaa\xbb") == bytes.fromhex("0502aabb")
    assert sc.decode_channel_message(bytes.fromhex("0502aabb")) == (sc.CREDENTIAL, (), (), b"\xaa\xbb", 0)
    for bad in ("0503aabb", "0502aabbcc"):  # truncated, trailing bytes
        with pytest.raises(DecodeError):
            sc.decode_channel_message(bytes.fromhex(bad))


def test_route_probe_vectors():
    from appliance.wire import probe
    token = bytes(range(8))
    assert probe.encode_probe(token) == bytes.fromhex("ff70726f626500") + token
    assert probe.unreachable_answer(probe.encode_probe(token)) == bytes.fromhex("ff756e726561636861626c6500") + token
    assert probe.decode_answer(probe.encode_probe(token)) == (True, token)
    assert probe.decode_answer(probe.unreachable_answer(probe.encode_probe(token))) == (False, token)
    assert probe.unreachable_answer(b"\xffprobe\x00short") is None  # only whole probes are answered
    assert probe.unreachable_answer(probe.UNREACHABLE + token) is None  # an answer is never answered
