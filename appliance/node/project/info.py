"""What a project is to a node: its name, where its relay boxes are and which identities
they prove (`ockam project information`, project.json), and how a node acts as one.

The project node keeps the member list (authority.py). Members get there by spending a
one-time enrollment ticket; they fetch short-lived credentials and present them in later
secure channel handshakes (membership.py), so any node of the project can check who a peer
is and what it may do (trust.py) without asking the project node.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from appliance.node.errors import NodeError
from appliance.secure.identity import identifier_of, is_identifier
from appliance.wire.errors import WireError
from appliance.wire.multiaddr import Tcp, parse

DEFAULT_CREDENTIAL_TTL = 600  # short: a removed member's credential, and channels, lapse soon
DEFAULT_TICKET_TTL = 3600
RELAY_ATTRIBUTE = "relay"  # when a member has it, the only relay name it may create
BOX_ATTRIBUTE = "ockam-relay-box"  # a member that is one more relay box of the project: its HOST:PORT


class ProjectError(NodeError):
    """Not a member, a spent ticket, a project that is not known here."""


class AccessRoute(NamedTuple):
    """One relay box of a project: where members reach it, and the identity it must prove."""
    host: str
    port: int
    identifier: str

    @property
    def target(self) -> Tcp:
        return Tcp(self.host, self.port)

    @property
    def text(self) -> str:
        """As Ockam writes it: /dnsaddr/ even for an IPv4 address (/ip6/ for IPv6)."""
        return f"/{'ip6' if ':' in self.host else 'dnsaddr'}/{self.host}/tcp/{self.port}/service/api"

    def to_json(self) -> dict:
        return {"route": self.text, "identity": self.identifier}


class ProjectInfo(NamedTuple):
    """What a member node needs to reach and trust a project (`ockam project information`):
    the project node (relay and authority) and the project's other relay boxes, if any."""
    name: str
    host: str
    port: int
    authority_key: bytes  # the project node's identity public key
    boxes: tuple = ()  # AccessRoute of each other relay box, in the order members prefer them

    @property
    def identifier(self) -> str:
        return identifier_of(self.authority_key)

    @property
    def access(self) -> tuple:
        """Every relay box, the project node first."""
        return (AccessRoute(self.host, self.port, self.identifier), *self.boxes)

    @property
    def access_route(self) -> str:
        return self.access[0].text

    def to_json(self) -> dict:
        return {"id": hashlib.sha256(self.authority_key + self.name.encode()).hexdigest()[:32],
                "name": self.name, "identity": self.identifier,
                "access_route": self.access_route, "authority_access_route": self.access_route,
                "authority_identity": self.authority_key.hex(),
                "access_routes": [box.to_json() for box in self.access]}

    @classmethod
    def from_json(cls, data: dict) -> "ProjectInfo":
        """Ockam's fields, plus `access_routes` (ours, optional): each relay box's route and identity."""
        try:
            target = _access_target(data["access_route"])
            key = bytes.fromhex(data["authority_identity"])
            boxes: dict = {}  # HOST:PORT -> AccessRoute: the last listed at an address counts, as at the authority
            for entry in data.get("access_routes", [])[1:]:
                box = _access_target(entry["route"])
                if not is_identifier(entry["identity"]):
                    raise ValueError(f"{entry['identity']!r} is not an identifier")
                if box.hostport != target.hostport:
                    boxes[box.hostport] = AccessRoute(box.host, box.port, entry["identity"])
            info = cls(str(data["name"]), target.host, target.port, key, tuple(boxes.values()))
        except (AttributeError, KeyError, TypeError, ValueError, WireError) as exc:
            raise ProjectError(f"not a valid project description: {exc}") from None
        if data.get("identity") and data["identity"] != info.identifier:
            raise ProjectError("project identity does not match its authority key")
        return info

    def merged(self, other: "ProjectInfo") -> "ProjectInfo":
        """`other` (a ticket's copy: the authority's word, when it was made) with the relay
        boxes this description lists and `other` does not (this one may be newer: a
        project.json made later). A description of another authority is `other` itself."""
        if (other.name, other.authority_key) != (self.name, self.authority_key):
            return other
        known = {box.target.hostport for box in other.access}
        return other._replace(boxes=other.boxes + tuple(b for b in self.boxes if b.target.hostport not in known))


def _access_target(route) -> Tcp:
    parts = route.split("/")
    if len(parts) < 5 or parts[1] not in ("dnsaddr", "ip4", "ip6") or parts[3] != "tcp":
        raise ValueError(f"access route {route!r} is not /dnsaddr/HOST/tcp/PORT/service/api")
    if parts[1] == "dnsaddr" and ":" in parts[2]:  # an IPv6 address, as earlier versions wrote it
        parts[1:3] = ["ip6", parts[2].strip("[]")]
    segments = parse("/".join(parts[:5]))  # checks the host as its protocol says, and the port
    if len(segments) != 1:
        raise ValueError(f"access route {route!r} is not /dnsaddr/HOST/tcp/PORT/service/api")
    return segments[0]


class ProjectNode(NamedTuple):
    """How a node acts as a project: its name, the address members reach it at, the member
    store (a dict persisted by `save`) and how long credentials last."""
    name: str
    public_address: str
    members: dict
    save: object
    credential_ttl: int = DEFAULT_CREDENTIAL_TTL


def box_label(project: str, box: AccessRoute | None) -> str:
    """How a route through a relay box of a project is written in lists and logs:
    `/project/NAME` for the project node (None), `/project/NAME[HOST:PORT]` for the others."""
    return f"/project/{project}" if box is None else f"/project/{project}[{box.target.hostport}]"
