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
from appliance.secure.identity import Identity, identifier_of
from appliance.wire import authority as wire
from appliance.wire.address import Address
from appliance.wire.errors import DecodeError
from appliance.wire.multiaddr import Tcp, parse_hostport

log = logging.getLogger(__name__)

DEFAULT_CREDENTIAL_TTL = 600  # short: a removed member's credential, and channels, lapse soon
DEFAULT_TICKET_TTL = 3600
RELAY_ATTRIBUTE = "relay"  # when a member has it, the only relay name it may create


class ProjectError(NodeError):
    """Not a member, a spent ticket, a project that is not known here."""


class ProjectInfo(NamedTuple):
    """What a member node needs to reach and trust a project (`ockam project information`)."""
    name: str
    host: str
    port: int
    authority_key: bytes  # the project node's identity public key

    @property
    def identifier(self) -> str:
        return identifier_of(self.authority_key)

    @property
    def access_route(self) -> str:
        return f"/dnsaddr/{self.host}/tcp/{self.port}/service/api"

    @property
    def target(self) -> Tcp:
        return Tcp(self.host, self.port)

    def to_json(self) -> dict:
        return {"id": hashlib.sha256(self.authority_key + self.name.encode()).hexdigest()[:32],
                "name": self.name, "identity": self.identifier,
                "access_route": self.access_route, "authority_access_route": self.access_route,
                "authority_identity": self.authority_key.hex()}

    @classmethod
    def from_json(cls, data: dict) -> "ProjectInfo":
        try:
            route = data["access_route"]
            parts = route.split("/")
            if len(parts) < 5 or parts[1] not in ("dnsaddr", "ip4", "ip6") or parts[3] != "tcp":
                raise ValueError(f"access_route {route!r} is not /dnsaddr/HOST/tcp/PORT/service/api")
            target = parse_hostport(f"{parts[2]}:{parts[4]}")
            key = bytes.fromhex(data["authority_identity"])
            info = cls(str(data["name"]), target.host, target.port, key)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProjectError(f"not a valid project description: {exc}") from None
        if data.get("identity") and data["identity"] != info.identifier:
            raise ProjectError("project identity does not match its authority key")
        return info


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
        attributes = self.member_attributes(peer)
        if attributes is None:
            return f"{peer or 'an unauthenticated node'} is not a member of project {self.project}"
        allowed = attributes.get(RELAY_ATTRIBUTE)
        if allowed and name != f"forward_to_{allowed}":
            return f"{peer} may only create relay {allowed} in project {self.project}"
        return None

    # --- requests ---------------------------------------------------------------------------
    def handle(self, msg: LocalMessage) -> None:
        try:
            kind, token = wire.decode_request(msg.payload)
            reply = wire.encode_ok(self._enroll(msg.peer, token) if kind == wire.ENROLL else self._issue(msg.peer))
        except (DecodeError, ProjectError, CredentialError) as exc:
            reply = wire.encode_refusal(str(exc))
        self.node.send(msg.return_route, reply, (self.address,))

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


class Trust:
    """What this node knows of projects: their authorities, its own credentials, and the
    attributes its peers proved with theirs."""

    def __init__(self, projects=(), own_project: tuple | None = None):
        self.projects: dict[str, ProjectInfo] = {p.name: p for p in projects}
        # a project node's own (name, authority key): it holds its members to their credentials too
        self._own_project = own_project
        self.own: dict[str, Credential] = {}
        self._peers: dict[str, tuple] = {}  # identifier -> (project, attributes, expires_at)

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

    def learn(self, peer: str, encoded_credentials) -> float | None:
        """Record what the peer's credentials (from its handshake, or presented in a channel
        later) prove; bad ones are ignored. Returns when the newest valid one expires (Unix
        time), or None when none was valid."""
        newest = None
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
            known = self._peers.get(peer)
            if known is None or known[2] <= cred.expires_at:
                self._peers[peer] = (cred.project, attributes, cred.expires_at)
            newest = max(newest or 0, cred.expires_at)
        return newest

    def _authority_key(self, project: str) -> bytes | None:
        if self._own_project is not None and self._own_project[0] == project:
            return self._own_project[1]
        info = self.projects.get(project)
        return info.authority_key if info is not None else None

    def attributes_of(self, peer: str | None) -> dict | None:
        """The attributes a peer proved with an unexpired credential, or None."""
        entry = self._peers.get(peer) if peer else None
        if entry is None or time.time() >= entry[2]:
            return None
        return entry[1]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
