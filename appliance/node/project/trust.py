"""What a node believes of projects: their authorities' keys, its own credentials (kept
across restarts), and the attributes its peers proved with theirs."""

from __future__ import annotations

import logging
import time

from appliance.node.project.info import ProjectInfo
from appliance.secure import credential as credentials
from appliance.secure.credential import Credential, CredentialError

log = logging.getLogger(__name__)


class Trust:
    """What this node knows of projects: their authorities, its own credentials, and the
    attributes its peers proved with theirs."""

    def __init__(self, projects=(), own_project: tuple | None = None, kept: dict | None = None, save=None,
                 holder: str | None = None, wall=time.time):
        """`kept` (project -> credential hex) and `save(kept)`: where our credentials (of
        identity `holder`) outlive a restart, so that a member restarted while its project
        node is down can still use the project's other relay boxes until they lapse. `wall`: the
        clock credentials' times are read on (Unix time)."""
        self._wall = wall
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
                credentials.verify(credential, authority_key, holder, int(self._wall()))
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
        now = self._wall()
        return tuple(c.encode() for c in self.own.values() if c.expires_at > now)

    def needs_credential(self, project: str) -> bool:
        """No credential for `project`, or one past half its life: time to fetch a new one."""
        return self.refresh_in(project) <= 0

    def refresh_in(self, project: str) -> float:
        """Seconds until our credential for `project` is past half its life (0: now)."""
        cred = self.own.get(project)
        if cred is None:
            return 0.0
        return max(0.0, (cred.issued_at + cred.expires_at) / 2 - self._wall())

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
                attributes = credentials.verify(cred, authority_key, peer, int(self._wall()))
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
        return attributes if expires > self._wall() else None

    def attribute_sets(self, peer: str | None) -> list:
        """The attributes of each unexpired credential the peer proved (one per project)."""
        now = self._wall()
        return [attributes for attributes, expires in self._peers.get(peer or "", {}).values() if expires > now]
