"""Projects: a relay node that is also an authority, and what member nodes know of it.

The project node keeps the member list. Members get there by spending a one-time
enrollment ticket; the project's own identity is always a member. Members fetch
short-lived credentials from `/service/authority` and present them in later secure
channel handshakes, so any node of the project can check who a peer is and what it may do
(outlets with `allow` attributes) without asking the project node.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from typing import NamedTuple

from appliance.node.errors import NodeError
from appliance.node.message import LocalMessage
from appliance.node.worker import Worker
from appliance.secure import credential as credentials
from appliance.secure.credential import Credential, CredentialError
from appliance.secure.identity import Identity, identifier_of, is_identifier
from appliance.wire import authority as wire
from appliance.wire.address import Address
from appliance.wire.errors import DecodeError, WireError
from appliance.wire.multiaddr import Tcp, parse, parse_hostport

log = logging.getLogger(__name__)

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


class Authority(Worker):
    """`/service/authority` on the project node: enrollment and credential issuance."""

    def __init__(self, node, project: str, identity: Identity, members: dict, save, credential_ttl: int):
        self.node = node
        self.address = Address.local("authority")
        self.project = project
        self.identity = identity
        self.members = members  # identifier -> attributes; tickets under "tickets"
        self._save = save
        self.credential_ttl = credential_ttl

    # --- membership --------------------------------------------------------------------------
    def member_attributes(self, identifier: str | None) -> dict | None:
        if identifier is None:
            return None
        if identifier == self.identity.identifier:
            return {}
        return self.members.get("members", {}).get(identifier)

    def create_ticket(self, attributes: dict, ttl: int = DEFAULT_TICKET_TTL) -> str:
        token = os.urandom(16).hex()
        self.members.setdefault("tickets", {})[_digest(token)] = {
            "attributes": attributes, "expires": int(time.time()) + ttl}
        self._save(self.members)
        return token

    def remove_member(self, identifier: str) -> None:
        """It gets no new credential; the ones it has lapse at their expiry, and with them
        its channels to every node of the project."""
        if self.members.get("members", {}).pop(identifier, None) is None:
            raise ProjectError(f"{identifier} is not a member of project {self.project}")
        self._save(self.members)
        log.info("project %s: %s removed", self.project, identifier)

    def member_list(self) -> list:
        return [{"identifier": i, "attributes": a} for i, a in sorted(self.members.get("members", {}).items())]

    def relay_policy(self, peer: str | None, name: str) -> str | None:
        """Why `peer` may not register relay `name` here, or None when it may."""
        return relay_refusal(self.project, peer, self.member_attributes(peer), name)

    def boxes(self) -> tuple:
        """The project's other relay boxes: members enrolled with a relay box ticket, in the
        order they enrolled (one per address: the last to enrol there, a box reinstalled)."""
        boxes: dict = {}
        for identifier, attributes in self.members.get("members", {}).items():
            if BOX_ATTRIBUTE in attributes:
                target = parse_hostport(attributes[BOX_ATTRIBUTE])
                boxes[target.hostport] = AccessRoute(target.host, target.port, identifier)
        return tuple(boxes.values())

    # --- requests ---------------------------------------------------------------------------
    def handle(self, msg: LocalMessage) -> None:
        try:
            kind, token = wire.decode_request(msg.payload)
            reply = wire.encode_ok(self._enroll(msg.peer, token) if kind == wire.ENROLL else self._issue(msg.peer))
        except (DecodeError, ProjectError, CredentialError) as exc:
            reply = wire.encode_refusal(str(exc))
        except Exception:  # noqa: BLE001 - a member list damaged by hand: say so, and answer
            log.exception("project %s: cannot serve %s", self.project, msg.peer)
            reply = wire.encode_refusal("the project's authority failed; see its log")
        self.node.answer(msg, reply, self.address)

    def _enroll(self, peer: str | None, token: str) -> bytes:
        if peer is None:
            raise ProjectError("enroll over a secure channel")
        ticket = self.members.get("tickets", {}).pop(_digest(token), None)
        if ticket is None or ticket["expires"] < time.time():
            self._save(self.members)
            raise ProjectError("the enrollment ticket is not valid (unknown, used or expired)")
        self.members.setdefault("members", {})[peer] = ticket["attributes"]
        self._save(self.members)
        log.info("project %s: %s enrolled with %s", self.project, peer, ticket["attributes"])
        return b""

    def _issue(self, peer: str | None) -> bytes:
        attributes = self.member_attributes(peer)
        if attributes is None:
            raise ProjectError(f"{peer or 'an unauthenticated node'} is not a member of project {self.project}")
        return credentials.issue(self.identity, self.project, peer, attributes, int(time.time()),
                                 self.credential_ttl).encode()


def relay_refusal(project: str, peer: str | None, attributes: dict | None, name: str) -> str | None:
    """Why `peer`, a member of `project` with `attributes` (None: not a member), may not
    register relay `name`, or None when it may."""
    if attributes is None:
        return f"{peer or 'an unauthenticated node'} is not a member of project {project}"
    allowed = attributes.get(RELAY_ATTRIBUTE)
    if allowed and name != f"forward_to_{allowed}":
        return f"{peer} may only create relay {allowed} in project {project}"
    return None


class Trust:
    """What this node knows of projects: their authorities, its own credentials, and the
    attributes its peers proved with theirs."""

    def __init__(self, projects=(), own_project: tuple | None = None, kept: dict | None = None, save=None,
                 holder: str | None = None):
        """`kept` (project -> credential hex) and `save(kept)`: where our credentials (of
        identity `holder`) outlive a restart, so that a member restarted while its project
        node is down can still use the project's other relay boxes until they lapse."""
        self.projects: dict[str, ProjectInfo] = {p.name: p for p in projects}
        # a project node's own (name, authority key): it holds its members to their credentials too
        self._own_project = own_project
        self.own: dict[str, Credential] = {}
        self._peers: dict[str, dict] = {}  # identifier -> {project: (attributes, expires_at)}
        self._save = save
        for project, encoded in (kept if isinstance(kept, dict) else {}).items():
            try:
                credential = Credential.decode(bytes.fromhex(encoded))
                authority_key = self._authority_key(project)
                if credential.project != project or authority_key is None:
                    continue  # a project this node no longer knows
                credentials.verify(credential, authority_key, holder, int(time.time()))
            except (ValueError, TypeError, CredentialError):
                continue  # damaged, expired, another identity's, or another authority's (a project made anew)
            self.own[project] = credential

    def keep(self, credential: Credential) -> None:
        """A credential of ours, fresh from the authority."""
        self.own[credential.project] = credential
        self._persist()

    def forget(self, project: str) -> None:
        """The project said we are not a member: the credential we hold is void."""
        if self.own.pop(project, None) is not None:
            self._persist()

    def _persist(self) -> None:
        if self._save is not None:
            self._save({name: c.encode().hex() for name, c in self.own.items()})

    def presentable(self) -> tuple:
        now = time.time()
        return tuple(c.encode() for c in self.own.values() if c.expires_at > now)

    def needs_credential(self, project: str) -> bool:
        """No credential for `project`, or one past half its life: time to fetch a new one."""
        return self.refresh_in(project) <= 0

    def refresh_in(self, project: str) -> float:
        """Seconds until our credential for `project` is past half its life (0: now)."""
        cred = self.own.get(project)
        if cred is None:
            return 0.0
        return max(0.0, (cred.issued_at + cred.expires_at) / 2 - time.time())

    def learn(self, peer: str, encoded_credentials) -> dict:
        """Record what the peer's credentials (from its handshake, or presented in a channel
        later) prove; bad ones are ignored. Returns, for each project the peer proved it is
        a member of, when its newest valid credential expires (Unix time)."""
        proved: dict = {}
        for data in encoded_credentials:
            try:
                cred = Credential.decode(data)
                authority_key = self._authority_key(cred.project)
                if authority_key is None:
                    continue
                attributes = credentials.verify(cred, authority_key, peer, int(time.time()))
            except CredentialError as exc:
                log.info("ignored a credential from %s: %s", peer, exc)
                continue
            known = self._peers.setdefault(peer, {})
            if cred.project not in known or known[cred.project][1] <= cred.expires_at:
                known[cred.project] = (attributes, cred.expires_at)
            proved[cred.project] = max(proved.get(cred.project, 0), cred.expires_at)
        return proved

    def _authority_key(self, project: str) -> bytes | None:
        if self._own_project is not None and self._own_project[0] == project:
            return self._own_project[1]
        info = self.projects.get(project)
        return info.authority_key if info is not None else None

    def attributes_of(self, peer: str | None, project: str) -> dict | None:
        """The attributes a peer proved with an unexpired credential of `project`, or None."""
        attributes, expires = self._peers.get(peer or "", {}).get(project, (None, 0.0))
        return attributes if expires > time.time() else None

    def attribute_sets(self, peer: str | None) -> list:
        """The attributes of each unexpired credential the peer proved (one per project)."""
        now = time.time()
        return [attributes for attributes, expires in self._peers.get(peer or "", {}).values() if expires > now]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
