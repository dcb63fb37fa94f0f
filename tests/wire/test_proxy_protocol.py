"""PROXY protocol headers, byte for byte (the v1 line is the specification's own example)."""

from appliance.wire import proxy_protocol


def test_v1():
    assert proxy_protocol.encode_v1(("192.168.0.1", 56324), ("192.168.0.11", 443)) == \
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
    assert proxy_protocol.encode_v1(("::1", 5), ("::1", 6)) == b"PROXY TCP6 ::1 ::1 5 6\r\n"
    assert proxy_protocol.encode_v1(("localhost", 5), ("127.0.0.1", 6)) == b"PROXY UNKNOWN\r\n"
    assert proxy_protocol.encode_v1(None, None) == b"PROXY UNKNOWN\r\n"


def test_v2():
    assert proxy_protocol.encode_v2(("192.168.0.1", 56324), ("192.168.0.11", 443)).hex() == (
        "0d0a0d0a000d0a515549540a" "21" "11" "000c" "c0a80001" "c0a8000b" "dc04" "01bb")
    v6 = proxy_protocol.encode_v2(("2001:db8::1", 1), ("::1", 2))
    assert v6[12:16] == b"\x21\x21\x00\x24" and len(v6) == 16 + 36
    assert proxy_protocol.encode_v2(("127.0.0.1", 1), ("::1", 2)).hex() == "0d0a0d0a000d0a515549540a" "20" "00" "0000"


def test_the_origin_message_carries_both_addresses():
    import pytest

    from appliance.wire import portal
    from appliance.wire.errors import DecodeError

    message = portal.encode_origin("127.0.0.2:5000", "127.0.0.1:6000")
    assert message.hex() == "060e3132372e302e302e323a35303030" "0e3132372e302e302e313a36303030"  # PROTOCOL.md §7
    assert portal.decode(message) == (portal.ORIGIN_TAG, ("127.0.0.2:5000", "127.0.0.1:6000"))
    with pytest.raises(DecodeError, match="longer than any HOST:PORT"):
        portal.decode(portal.encode_origin("x" * 300, "y"))
    with pytest.raises(DecodeError):
        portal.decode(message + b"\x00")


def test_mapped_scoped_and_wildcard_addresses():
    assert proxy_protocol.encode_v1(("::ffff:127.0.0.2", 5), ("127.0.0.1", 6)) == b"PROXY TCP4 127.0.0.2 127.0.0.1 5 6\r\n"
    assert proxy_protocol.encode_v1(("fe80::1%eth0", 5), ("fe80::2", 6)) == b"PROXY TCP6 fe80::1 fe80::2 5 6\r\n"
    assert proxy_protocol.encode_v1(("127.0.0.2", 5), ("0.0.0.0", 6)) == b"PROXY UNKNOWN\r\n"  # never a wildcard
