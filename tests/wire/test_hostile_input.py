"""Every decoder is total: any bytes give a value or a typed WireError, never another exception."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.wire import bare, portal, relay, secure_channel
from appliance.wire.address import Address, read_route
from appliance.wire.errors import DecodeError, FrameTooLarge, ProtocolVersionMismatch, WireError
from appliance.wire.framing import FrameDecoder, encode_frame_header
from appliance.wire.transport import TransportMessage, decode_body
from appliance.wire.framing import PROTOCOL_VERSION_BYTE as VERSION

addresses = st.builds(Address, st.integers(0, 255), st.binary(max_size=40))
routes = st.lists(addresses, max_size=6).map(tuple)


@given(routes, routes, st.binary(max_size=2000))
def test_transport_message_round_trip(onward, return_route, payload):
    msg = TransportMessage(onward, return_route, payload)
    assert TransportMessage.decode(msg.encode()) == msg


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_transport_decoder_is_total(data):
    try:
        TransportMessage.decode(data)
    except WireError:
        pass


def _checked_decode(data):
    """The transport message decoded by the plain BARE Reader alone: the reference that the
    fast path (scanned routes, route cache, inline lengths) must agree with."""
    reader = bare.Reader(data)
    if reader.u8() != 1:
        raise DecodeError("version")
    onward, return_route = read_route(reader), read_route(reader)
    payload = reader.bytes()
    reader.expect_end()
    return TransportMessage(onward, return_route, payload)


def _outcome(decode, data):
    try:
        return decode(data)
    except WireError:
        return "refused"


@settings(max_examples=400)
@given(routes, routes, st.binary(max_size=300), st.integers(0, 400), st.integers(0, 255), st.booleans(),
       st.integers(0, 600))
def test_fast_transport_decoder_agrees_with_the_checked_one(onward, return_route, payload, where, byte, view, cut):
    data = bytearray(TransportMessage(onward, return_route, payload).encode())
    if where < len(data):  # one corrupted byte, often right where a length is read
        data[where] = byte
    del data[cut:]  # and often cut short
    data = memoryview(bytes(data)) if view else bytes(data)
    assert _outcome(TransportMessage.decode, data) == _outcome(_checked_decode, data)


@settings(max_examples=400)
@given(routes, routes, routes, routes, st.binary(max_size=300), st.integers(0, 400), st.integers(0, 255),
       st.integers(0, 600))
def test_a_link_s_route_hint_never_changes_what_a_message_decodes_to(onward, return_route, other_onward,
                                                                       other_return, payload, where, byte, cut):
    """decode_body takes the previous message's route length as a hint: whatever that message
    was, the next one decodes exactly as the checked decoder says, or is refused as it is."""
    hint = decode_body(TransportMessage(other_onward, other_return, b"x").encode())[3]
    data = bytearray(TransportMessage(onward, return_route, payload).encode())
    if where < len(data):
        data[where] = byte
    del data[cut:]
    data = bytes(data)
    expected = _outcome(_checked_decode, data)
    got = _outcome(lambda d: TransportMessage(*decode_body(d, hint)[:3]), data)
    assert got == expected


def test_decode_body_gives_the_routes_length_as_the_next_hint():
    body = TransportMessage((Address(0, b"ab"),), (Address(1, b"c"),), b"payload").encode()
    assert decode_body(body) == ((Address(0, b"ab"),), (Address(1, b"c"),), b"payload", 9)
    assert decode_body(body, 9) == decode_body(body)
    assert decode_body(body, 4) == decode_body(body)  # a hint that does not fit is only a miss


@settings(max_examples=300)
@given(st.binary(max_size=100))
def test_other_decoders_are_total(data):
    for decode in (portal.decode, relay.decode_request, relay.RelayReply.decode,
                   secure_channel.decode_channel_message, secure_channel.decode_step):
        try:
            decode(data)
        except WireError:
            pass


def test_huge_length_claim_is_rejected_without_allocating():
    # a payload claiming 2**60 bytes, followed by almost nothing
    data = b"\x01\x00\x00" + b"\x80\x80\x80\x80\x80\x80\x80\x80\x10" + b"x"
    with pytest.raises(DecodeError, match="truncated"):
        TransportMessage.decode(data)


def test_route_with_too_many_hops_is_rejected():
    with pytest.raises(DecodeError, match="hops"):
        TransportMessage.decode(b"\x01\xe8\x07")
    hops = bytes((65,)) + b"\x00\x01x" * 65  # well-formed, one-byte lengths: the fast path
    with pytest.raises(DecodeError, match="hops"):
        TransportMessage.decode(b"\x01" + hops + b"\x00\x00")


def test_framing_splits_and_joins_frames():
    decoder = FrameDecoder(max_frame=100)
    stream = VERSION + encode_frame_header(3) + b"abc" + encode_frame_header(0) + encode_frame_header(2) + b"xy"
    frames = []
    for i in range(len(stream)):  # one byte at a time
        frames += decoder.feed(stream[i:i + 1])
    assert frames == [b"abc", b"", b"xy"]


def test_framing_rejects_oversized_frame_before_buffering():
    decoder = FrameDecoder(max_frame=1 << 20)
    with pytest.raises(FrameTooLarge):
        decoder.feed(VERSION + struct.pack(">I", (1 << 20) + 1))


def test_framing_rejects_wrong_protocol_version():
    with pytest.raises(ProtocolVersionMismatch, match="peer speaks protocol version 1, we speak 2"):
        FrameDecoder().feed(b"\x01\x00\x00\x00\x00")  # a node from before flow control


@pytest.mark.parametrize("hint", [0, 5])
def test_a_three_byte_length_is_not_read_as_a_two_byte_one(hint):
    """`80 80 01` claims 16384 bytes; only 16383 follow its first two bytes, which a
    two-byte reading would take for the payload, starting with the third length byte."""
    routes = b"\x01\x00\x04echo" + b"\x00"  # onward (echo), empty return route: 5 bytes
    decode_body(b"\x01" + routes + b"\x05hello")  # the hint's pair of routes, seen before
    with pytest.raises(DecodeError, match="truncated"):
        decode_body(b"\x01" + routes + b"\x80\x80\x01" + b"A" * 16383, hint)
