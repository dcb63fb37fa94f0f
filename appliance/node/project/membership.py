"""This node as a member of projects: the `/project/NAME` hop of a route, and the node's own
credentials: the first one, fetched before going to a relay box; a fresh one at half the
old one's life, presented in every channel; one on demand (a topology's join, enrollment).
"""

from __future__ import annotations

import logging

import gevent

from appliance.node import routes
from appliance.node.channels.channel import HANDSHAKE_TIMEOUT
from appliance.node.errors import NodeError, RouteError
from appliance.node.project.info import BOX_ATTRIBUTE, AccessRoute, ProjectError, ProjectInfo, box_label
from appliance.secure.credential import Credential, CredentialError
from appliance.secure.errors import SecureError
from appliance.wire import authority as authority_wire
from appliance.wire.address import Address
from appliance.wire.errors import DecodeError

log = logging.getLogger(__name__)

FIRST_CREDENTIAL_WAIT = 2.0  # a route through another relay box waits this long for our first credential
FIRST_CREDENTIAL_RETRY = 30.0  # ...and when none came, routes go without asking again for this long
REFRESH_LOOK = 1.0  # seconds between looks at our credentials (one may have just arrived)
REFRESH_MIN_WAIT = 0.1
REFRESH_RETRY = 1.0  # seconds before a failed refresh is tried again, doubling...
REFRESH_RETRY_MAX = 60.0  # ...up to this


class Membership:
    """The projects this node reaches (`trust.projects`) and the credentials it holds of
    them (`trust.own`). `relay_box_of`: the project this node is a relay box of, which always
    wants a credential of it (members do not use a box without one)."""

    def __init__(self, node, tcp, channels, trust, relay_box_of: str | None = None):
        self.node, self.tcp, self.channels, self.trust = node, tcp, channels, trust
        self.relay_box_of = relay_box_of
        self._fetching: dict = {}  # project -> the greenlet fetching our first credential of it
        self._no_credential_until: dict = {}  # project -> monotonic time before which we do not ask again
        self._refresher = None
        self._start_refresher()

    def hop(self, name: str, opened: list, reuse: bool = True, handshake_timeout: float = HANDSHAKE_TIMEOUT,
            box: AccessRoute | None = None) -> tuple:
        """`/project/NAME`: TCP to one of its relay boxes (None: the project node), then a
        secure channel to its `api` authenticated as that box's identity; on the way, get or
        refresh our credential from the project node. Another box must also prove, with a
        credential of the project, that it is still one of its relay boxes at that address.
        Returns the channel's address and the text that stands for this hop."""
        info = self.trust.projects.get(name)
        if info is None:
            raise routes.unknown_project(name)
        access = box or info.access[0]
        if box is not None and name not in self.trust.own:
            self._first_credential(name)
        if reuse:
            conn = self.tcp.connection_to(access.target)
        else:
            conn = self.tcp.connect(access.target)
            opened.append(conn)
        api = (conn.address, Address.local("api"))
        via, pinned = box_label(name, box), {access.identifier}
        end = (self.channels.channel_to(api, via, pinned, handshake_timeout) if reuse
               else self.channels.create(api, via, pinned, timeout=handshake_timeout))
        if box is None:
            if self.trust.needs_credential(name):
                self._fetch_credential(name, end.encryptor.address)
        elif end.proved_until(name) <= self.node.clock.wall() or (self.trust.attributes_of(end.peer, name) or {}).get(
                BOX_ATTRIBUTE) != access.target.hostport:
            end.close(notify=True)
            raise RouteError(f"{via}: {end.peer} showed no credential of project {name} making it its relay box "
                             f"at {access.target.hostport} (removed from the project?)")
        return end.encryptor.address, via

    def enroll(self, info: ProjectInfo, token: str) -> None:
        """Spend a ticket. The ticket's copy of the project's description adds to the one this
        node has (say, a newer project.json listing more relay boxes); it replaces it only when
        the authority differs."""
        routes.parse_route(f"/project/{info.name}")  # a name routes can carry, before the ticket is spent
        known = self.trust.projects.get(info.name)
        self.trust.projects[info.name] = known.merged(info) if known is not None else info
        channel, _via = self.hop(info.name, [])
        reply = self.node.request((channel, Address.local("authority")), authority_wire.encode_enroll(token), 10.0)
        ok, body = authority_wire.decode_reply(reply.payload)
        if not ok:
            raise ProjectError(f"enrollment refused: {body}")
        self._fetch_credential(info.name, reply.return_route[0])  # a member now: our first credential
        self._start_refresher()

    def update(self, info: ProjectInfo) -> ProjectInfo | None:
        """A project's description read again (a topology reload): the relay boxes it lists
        from now on. Returns the one it replaces. Another authority under the same name is
        another project: that takes a restart."""
        known = self.trust.projects.get(info.name)
        if known is not None and known.authority_key != info.authority_key:
            raise ProjectError(f"project {info.name} now names another authority; restart the node to use it")
        self.trust.projects[info.name] = info
        return known

    def fetch_now(self, name: str) -> bool:
        """Ask the project node for a fresh credential now: whether it gave one (False: not a
        member, or no longer)."""
        routes.parse_route(f"/project/{name}")
        before = self.trust.own.get(name)
        channel, _via = self.hop(name, [])  # fetches one when we have none (or an old one)
        if self.trust.own.get(name) is before:
            self._fetch_credential(name, channel)
        return self._renewed(name, before)

    def close(self) -> None:
        if self._refresher is not None:
            self._refresher.kill(block=False)
        for fetching in list(self._fetching.values()):
            fetching.kill(block=False)

    def _renewed(self, name: str, before) -> bool:
        """Whether we hold a credential of `name` other than `before` (fetched since)."""
        got = self.trust.own.get(name)
        return got is not None and got is not before

    def _first_credential(self, name: str) -> None:
        """We hold no credential of `name`, and go to another relay box (which believes
        credentials, not a member list): fetch one from the project node in the background,
        and wait for it FIRST_CREDENTIAL_WAIT at most (a non-member gets none; a stalled
        project node must not hold up the box for long)."""
        fetching = self._fetching.get(name)
        if fetching is None:
            if self.node.clock.now() < self._no_credential_until.get(name, 0.0):
                return  # asked lately, and got none (not a member, or the project node is away): go on
            fetching = self._fetching[name] = gevent.spawn(self._credential_from_project_node, name)
        fetching.join(FIRST_CREDENTIAL_WAIT)

    def _credential_from_project_node(self, name: str) -> None:
        """Our first credential of `name`, presented to the peers we have channels with."""
        try:
            self.hop(name, [])
            if name in self.trust.own:
                self.channels.present(self.trust.own[name].encode())
        except (NodeError, SecureError, DecodeError) as exc:
            log.info("project %s: no credential from its project node (%s)", name, exc)
        finally:
            del self._fetching[name]
            if name not in self.trust.own:
                self._no_credential_until[name] = self.node.clock.now() + FIRST_CREDENTIAL_RETRY

    def _fetch_credential(self, project: str, channel: Address) -> None:
        reply = self.node.request((channel, Address.local("authority")), authority_wire.ISSUE_REQUEST, 10.0)
        try:
            ok, body = authority_wire.decode_reply(reply.payload)
            if ok:
                credential = Credential.decode(body)
                if credential.project != project:
                    raise CredentialError(f"a credential of project {credential.project!r}")
                self.trust.keep(credential)
            else:  # not a member (or no longer): what we kept is void
                log.debug("no credential from project %s: %s", project, body)
                self.trust.forget(project)
        except (DecodeError, SecureError) as exc:
            log.warning("bad credential reply from project %s: %s", project, exc)

    def _start_refresher(self) -> None:
        if self._refresher is None and self.trust.projects:
            self._refresher = gevent.spawn(self._refresh_credentials)

    def _refresh_credentials(self) -> None:
        """A member keeps a fresh credential: at half its life it fetches a new one and
        presents it in every channel, so that its peers keep those channels open past the old
        one's expiry. A failed fetch is tried again soon; a removed member gets none. A relay
        box always wants one of its project (members will not use it without): it asks again
        and again, less and less often, while it has none."""
        retry_at: dict = {}  # project -> (monotonic time of the next try, backoff) after a failure
        while True:
            held = [p for p in self.trust.projects if p in self.trust.own or p == self.relay_box_of]
            now = self.node.clock.now()
            wait = min([self.trust.refresh_in(p) for p in held] + [REFRESH_LOOK]
                       + [at - now for at, _ in retry_at.values()])
            self.node.clock.sleep(max(REFRESH_MIN_WAIT, wait))
            for name in held:
                if not self.trust.needs_credential(name) or retry_at.get(name, (0, 0))[0] > self.node.clock.now():
                    continue
                before = self.trust.own.get(name)
                try:
                    self.hop(name, [])
                    failure = None if self._renewed(name, before) else "refused"
                except (NodeError, SecureError, DecodeError) as exc:
                    failure = str(exc)
                if failure:  # unreachable, or no longer a member: ask again, less and less often
                    backoff = min(retry_at[name][1] * 2, REFRESH_RETRY_MAX) if name in retry_at else REFRESH_RETRY
                    retry_at[name] = (self.node.clock.now() + backoff, backoff)
                    log.warning("project %s: cannot refresh our credential: %s (again in %g s)", name, failure,
                                backoff)
                    continue
                retry_at.pop(name, None)
                self.node.counters["credentials_refreshed"] += 1
                self.channels.present(self.trust.own[name].encode())
