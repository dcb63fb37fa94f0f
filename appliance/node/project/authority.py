"""`/service/authority` on the project node: the member list, enrollment tickets, and the
credentials it issues; and the rule on relay names a credential's attributes set."""

from __future__ import annotations

import hashlib
import logging
import os

from appliance.node.message import LocalMessage
from appliance.node.project.info import (BOX_ATTRIBUTE, DEFAULT_TICKET_TTL, RELAY_ATTRIBUTE, AccessRoute,
                                         ProjectError)
from appliance.node.worker import Worker
from appliance.secure import credential as credentials
from appliance.secure.credential import CredentialError
from appliance.secure.identity import Identity
from appliance.wire import authority as wire
from appliance.wire.address import Address
from appliance.wire.errors import DecodeError
from appliance.wire.multiaddr import parse_hostport

log = logging.getLogger(__name__)


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
            "attributes": attributes, "expires": int(self.node.clock.wall()) + ttl}
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
        if ticket is None or ticket["expires"] < self.node.clock.wall():
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
        return credentials.issue(self.identity, self.project, peer, attributes, int(self.node.clock.wall()),
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

def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
