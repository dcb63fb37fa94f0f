"""The HAProxy PROXY protocol header an outlet writes first to its target, so that the
service sees the original client's address (nginx `listen ... proxy_protocol`, HAProxy,
PgBouncer...). Version 1 is a text line, version 2 binary
(https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt):

    v1: "PROXY TCP4|TCP6 <src ip> <dst ip> <src port> <dst port>\\r\\n", or "PROXY UNKNOWN\\r\\n"
    v2: 0d0a0d0a000d0a515549540a | 21 (v2, PROXY) | 11 (TCP/IPv4) or 21 (TCP/IPv6)
        | length (2 bytes) | src ip | dst ip | src port (2) | dst port (2)
        or, with no address to tell: 20 (v2, LOCAL) | 00 | 0000

Addresses are (host, port) pairs of IP literals; anything else is "unknown".
"""

from __future__ import annotations

import ipaddress
import struct

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
VERSIONS = ("v1", "v2")


def _ip(host: str):
    """An IP literal as the header wants it: an IPv4-mapped IPv6 address as IPv4, no scope id."""
    address = ipaddress.ip_address(host.split("%", 1)[0])
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _ips(source, destination):
    """(source ip, destination ip) when both are IP literals of one family, else None."""
    try:
        src, dst = _ip(source[0]), _ip(destination[0])
    except (ValueError, TypeError, IndexError, AttributeError):
        return None
    return (src, dst) if src.version == dst.version and not src.is_unspecified and not dst.is_unspecified else None


def encode_v1(source, destination) -> bytes:
    ips = _ips(source, destination) if source and destination else None
    if ips is None:
        return b"PROXY UNKNOWN\r\n"
    family = "TCP4" if ips[0].version == 4 else "TCP6"
    return f"PROXY {family} {ips[0]} {ips[1]} {int(source[1])} {int(destination[1])}\r\n".encode()


def encode_v2(source, destination) -> bytes:
    ips = _ips(source, destination) if source and destination else None
    if ips is None:
        return SIGNATURE + b"\x20\x00\x00\x00"
    family = b"\x11" if ips[0].version == 4 else b"\x21"
    body = ips[0].packed + ips[1].packed + struct.pack(">HH", int(source[1]), int(destination[1]))
    return SIGNATURE + b"\x21" + family + struct.pack(">H", len(body)) + body


def encode(version: str, source, destination) -> bytes:
    return encode_v1(source, destination) if version == "v1" else encode_v2(source, destination)
