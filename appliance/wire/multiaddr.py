"""Route text (`/service/x/ip4/127.0.0.1/tcp/4000/...`) parsed into typed segments.

Parsing is pure; turning segments into addresses (opening TCP connections, looking up
local nodes, creating secure channels) is the runtime's job.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

from appliance.wire.errors import MultiaddrError

MAX_SEGMENTS = 64


class Local(NamedTuple):
    """`/service/x` or `/worker/x`: an address on the node the route has reached."""
    name: str


class Node(NamedTuple):
    """`/node/n`: the TCP listener of local node n."""
    name: str


class Tcp(NamedTuple):
    """`/ip4/A/tcp/P`, `/ip6/A/tcp/P`, `/dnsaddr/H/tcp/P`: a TCP connection to host:port."""
    host: str
    port: int

    @property
    def hostport(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class Secure(NamedTuple):
    """`/secure/x`: a secure channel to listener x over the route so far."""
    listener: str


class Project(NamedTuple):
    """`/project/p`: the access route of project p plus a secure channel to it."""
    name: str




def _port(text: str, where: str, allow_zero: bool = False) -> int:
    if not text.isdigit() or not (0 if allow_zero else 1) <= int(text) < 65536:
        raise MultiaddrError(f"bad TCP port {text!r} in {where}")
    return int(text)


def parse(text: str) -> list:
    """Parse route text into a list of segments, or raise MultiaddrError."""
    if not text.startswith("/"):
        raise MultiaddrError(f"route {text!r} must start with '/' (e.g. /service/echo)")
    parts = text.split("/")[1:]
    if parts and parts[-1] == "":
        parts.pop()
    segments: list = []
    i = 0
    while i < len(parts):
        proto = parts[i]
        value = parts[i + 1] if i + 1 < len(parts) else ""
        if not value:
            raise MultiaddrError(f"'/{proto}' needs a value in route {text!r}")
        if proto in ("service", "worker"):
            segments.append(Local(_local_name(value, text)))
            i += 2
        elif proto == "node":
            segments.append(Node(value))
            i += 2
        elif proto == "secure":
            segments.append(Secure(value))
            i += 2
        elif proto == "project":
            segments.append(Project(value))
            i += 2
        elif proto in ("ip4", "ip6", "dnsaddr"):
            if i + 3 >= len(parts) or parts[i + 2] != "tcp":
                raise MultiaddrError(f"'/{proto}/{value}' must be followed by /tcp/PORT in {text!r}")
            _check_host(proto, value, text)
            segments.append(Tcp(value, _port(parts[i + 3], text)))
            i += 4
        else:
            raise MultiaddrError(f"unknown protocol '/{proto}' in route {text!r}")
        if len(segments) > MAX_SEGMENTS:
            raise MultiaddrError(f"route {text!r} has more than {MAX_SEGMENTS} segments")
    if not segments:
        raise MultiaddrError("empty route")
    return segments


def _local_name(value: str, text: str) -> str:
    """A worker's name. `0#name` is the same (it is how `tcp-connection list` prints a
    worker's address); another transport type there is a mistake, said at once."""
    tt, sep, inner = value.partition("#")
    if not sep or not tt.isdigit():
        return value
    if tt == "0" and inner:
        return inner
    raise MultiaddrError(f"'{value}' in route {text!r} is not a local address (a TCP one is written "
                         "/ip4/HOST/tcp/PORT or /dnsaddr/NAME/tcp/PORT)")


_DNS_NAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})")


def _check_host(proto: str, host: str, text: str) -> None:
    try:
        if proto == "ip4":
            ipaddress.IPv4Address(host)
        elif proto == "ip6":
            ipaddress.IPv6Address(host)
        elif not _DNS_NAME.fullmatch(host):
            raise ValueError(host)
    except ValueError:
        raise MultiaddrError(f"bad {proto} address {host!r} in {text!r}") from None


def check_reachable(target: Tcp) -> Tcp:
    """`target` as others dial it: an IP address (written the one way) or a DNS name, never
    a wildcard address."""
    try:
        address = ipaddress.ip_address(target.host)
    except ValueError:
        _check_host("dnsaddr", target.host, target.hostport)
        if target.host != "0":
            return target
    else:
        mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:0.0.0.0 is a wildcard too
        if not address.is_unspecified and not (mapped is not None and mapped.is_unspecified):
            return Tcp(address.compressed, target.port)
    raise MultiaddrError(f"{target.hostport} is a wildcard address: give the address others dial")


def parse_hostport(text: str, allow_zero: bool = False) -> Tcp:
    """`127.0.0.1:7000`, `localhost:7000` or `[::1]:7000` as a Tcp segment.

    Port 0 ("any free port") is only allowed where we bind, never where we connect."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise MultiaddrError(f"expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return Tcp(host, _port(port, text, allow_zero))


def parse_bind(text: str) -> Tcp:
    """Where to listen: `HOST:PORT`, or `PORT` alone for loopback (never all interfaces
    unless an address says so)."""
    text = text.strip()
    return parse_hostport(f"127.0.0.1:{text}" if text.isdigit() else text, allow_zero=True)


def to_text(segments: list) -> str:
    out = []
    for seg in segments:
        if isinstance(seg, Local):
            out.append(f"/service/{seg.name}")
        elif isinstance(seg, Node):
            out.append(f"/node/{seg.name}")
        elif isinstance(seg, Tcp):
            kind = "ip6" if ":" in seg.host else "ip4" if _is_ip4(seg.host) else "dnsaddr"
            out.append(f"/{kind}/{seg.host}/tcp/{seg.port}")
        elif isinstance(seg, Secure):
            out.append(f"/secure/{seg.listener}")
        elif isinstance(seg, Project):
            out.append(f"/project/{seg.name}")
    return "".join(out)


def _is_ip4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
        return True
    except ValueError:
        return False
