"""One running node with everything on it, and the operations its control API offers.

Every public method here is one control request; arguments and results are plain JSON
values, errors are NodeError subclasses whose text is shown to the user as is.
"""

from __future__ import annotations

import logging
import os
import time

import gevent

from appliance.limits.budgets import Limits
from appliance.node import routes
from appliance.node.errors import AddressInUse, BadArgument, NodeError, NotFound, RouteError
from appliance.node.transport.liveness import DEFAULT_LINK_TIMEOUT
from appliance.node.node import Node
from appliance.node.portals.portal import Inlet, Outlet, new_alias
from appliance.node.relays.relay import DEFAULT_GRACE, ForwardingService, Relays, SecretBook
from appliance.node.portals.routewatch import RouteWatch
from appliance.node.services import start_default_services
from appliance.node.channels.channel import HANDSHAKE_TIMEOUT, SecureChannels
from appliance.node.project.project import (BOX_ATTRIBUTE, RELAY_ATTRIBUTE, AccessRoute, Authority, ProjectError,
                                     ProjectInfo, ProjectNode, Trust, relay_refusal)
from appliance.node.transport.tcp import TcpConnection, TcpListener, TcpTransport
from appliance.secure.credential import Credential, CredentialError
from appliance.secure.errors import SecureError
from appliance.secure.identity import Identity, is_identifier
from appliance.secure.suites import suite_by_name
from appliance.wire import authority as authority_wire
from appliance.wire import bare, multiaddr
from appliance.wire import proxy_protocol as proxy_protocol_wire
from appliance.wire.address import Address
from appliance.wire.errors import DecodeError

log = logging.getLogger(__name__)

DEFAULT_MESSAGE_TIMEOUT = 10.0
INLET_CHECK_WAIT = 2.0  # `tcp-inlet create` says whether the outlet answered within this
FIRST_CREDENTIAL_WAIT = 2.0  # a route through another relay box waits this long for our first credential
FIRST_CREDENTIAL_RETRY = 30.0  # ...and when none came, routes go without asking again for this long
REFRESH_LOOK = 1.0  # seconds between looks at our credentials (one may have just arrived)
REFRESH_MIN_WAIT = 0.1
REFRESH_RETRY = 1.0  # seconds before a failed refresh is tried again, doubling...
REFRESH_RETRY_MAX = 60.0  # ...up to this


def box_label(project: str, box: AccessRoute | None) -> str:
    """How a route through a relay box of a project is written in lists and logs:
    `/project/NAME` for the project node (None), `/project/NAME[HOST:PORT]` for the others."""
    return f"/project/{project}" if box is None else f"/project/{project}[{box.target.hostport}]"


def check_identifiers(identifiers) -> frozenset | None:
    """None (anyone) or a set of well-formed identifiers; a malformed one is an error."""
    if not identifiers:
        return None
    for identifier in identifiers:
        if not is_identifier(identifier):
            raise BadArgument(f"{identifier!r} is not an identifier (I followed by 40 hex digits)")
    return frozenset(identifiers)


class NodeRuntime:
    def __init__(self, name: str, node_lookup: routes.NodeLookup = lambda _name: None,
                 max_frame: int | None = None, identity: Identity | None = None,
                 relay_authorized=None, projects=(), project_node: ProjectNode | None = None,
                 link_timeout: float = DEFAULT_LINK_TIMEOUT, relay: bool = True,
                 relay_grace: float = DEFAULT_GRACE, limits: Limits = Limits(),
                 relay_secrets: SecretBook | None = None, relay_box_of: str | None = None,
                 credential_store: tuple = (None, None)):
        """`relay_box_of`: the project this node is one more relay box of (its members may
        register relays here, proving it with their credentials). `credential_store`: (dict,
        save) where the node's own credentials are kept across restarts."""
        identity = identity or Identity.generate()
        self.limits = limits
        self.node = Node(name)
        self.node_lookup = node_lookup
        self.tcp = TcpTransport(self.node, **({"max_frame": max_frame} if max_frame else {}),
                                link_timeout=link_timeout, limits=limits)
        start_default_services(self.node)
        self.trust = Trust(projects, own_project=(project_node.name, identity.public_key) if project_node else None,
                           kept=credential_store[0], save=credential_store[1], holder=identity.identifier)
        self.authority = None
        if project_node is not None:
            self.authority = Authority(self.node, project_node.name, identity, project_node.members,
                                       project_node.save, project_node.credential_ttl)
            self.node.register(self.authority)
            self.project_node = project_node
        self.relay_box_of = relay_box_of
        self._fetching: dict = {}  # project -> the greenlet fetching our first credential of it
        self._no_credential_until: dict = {}  # project -> monotonic time before which we do not ask again
        self.forwarding = ForwardingService(self.node, self._relay_policy(check_identifiers(relay_authorized)),
                                            offered=relay or project_node is not None or bool(relay_authorized)
                                            or relay_box_of is not None,
                                            grace=relay_grace,
                                            limits=limits)
        self.node.register(self.forwarding)
        self.relays = Relays(self.node, relay_secrets)
        self.channels = SecureChannels(self.node, identity, self.trust, limits)
        self.channels.listen("api")
        if relay_box_of is not None:
            self.channels.on_lapse(self._box_credential_lapsed)
        self.inlets: dict[str, Inlet] = {}
        self.outlets: dict[str, Outlet] = {}
        self._refresher = None
        self._start_refresher()
        self.route_watch = RouteWatch(self.node, self._portal_streams, self.tcp.monitor.interval,
                                      route_dead=self.channels.path_broken)
        self.pid = os.getpid()
        self.started = time.time()

    def resolve(self, text: str, reuse: bool = True, authorized=None,
                handshake_timeout: float = HANDSHAKE_TIMEOUT, box: AccessRoute | None = None) -> routes.Resolved:
        """Route text to addresses; with `reuse`, existing TCP connections and secure
        channels over the same route are used, else new ones are made (relays own theirs).
        Inlets pass a short `handshake_timeout`: they try again soon anyway. `box`: the relay
        box of the first project the route names that it goes through (None: the project
        node; see `each_box`)."""
        def secure(route, via):
            if reuse:
                return self.channels.channel_to(route, via, authorized, handshake_timeout).encryptor.address
            return self.channels.create(route, via, authorized, timeout=handshake_timeout).encryptor.address

        first_project = None  # the first project the route names: learnt from its first project hop

        def project(name, opened):
            nonlocal first_project
            first_project = first_project or name
            return self._project_hop(name, opened, reuse, handshake_timeout, box if name == first_project else None)

        return routes.resolve(self.tcp, text, self.node_lookup, reuse=reuse, secure=secure, project=project)

    def _project_hop(self, name: str, opened: list, reuse: bool, handshake_timeout: float,
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
        elif end.proved_until(name) <= time.time() or (self.trust.attributes_of(end.peer, name) or {}).get(
                BOX_ATTRIBUTE) != access.target.hostport:
            end.close(notify=True)
            raise RouteError(f"{via}: {end.peer} showed no credential of project {name} making it its relay box "
                             f"at {access.target.hostport} (removed from the project?)")
        return end.encryptor.address, via

    def _first_credential(self, name: str) -> None:
        """We hold no credential of `name`, and go to another relay box (which believes
        credentials, not a member list): fetch one from the project node in the background,
        and wait for it FIRST_CREDENTIAL_WAIT at most (a non-member gets none; a stalled
        project node must not hold up the box for long)."""
        fetching = self._fetching.get(name)
        if fetching is None:
            if time.monotonic() < self._no_credential_until.get(name, 0.0):
                return  # asked lately, and got none (not a member, or the project node is away): go on
            fetching = self._fetching[name] = gevent.spawn(self._credential_from_project_node, name)
        fetching.join(FIRST_CREDENTIAL_WAIT)

    def _credential_from_project_node(self, name: str) -> None:
        """Our first credential of `name`, presented to the peers we have channels with."""
        try:
            self._project_hop(name, [], True, HANDSHAKE_TIMEOUT)
            if name in self.trust.own:
                self.channels.present(self.trust.own[name].encode())
        except (NodeError, SecureError, DecodeError) as exc:
            log.info("project %s: no credential from its project node (%s)", name, exc)
        finally:
            del self._fetching[name]
            if name not in self.trust.own:
                self._no_credential_until[name] = time.monotonic() + FIRST_CREDENTIAL_RETRY

    def each_box(self, text: str) -> list:
        """(label, box) for each way `text` can go: one per relay box of the first project it
        names (box None: the project node; the label names the others), else just (text, None)."""
        name = routes.first_project(text)
        info = self.trust.projects.get(name) if name else None
        if info is None or not info.boxes:
            return [(text, None)]
        segments = routes.parse_route(text)
        first = next(i for i, segment in enumerate(segments) if isinstance(segment, multiaddr.Project))

        def label(box):
            return (multiaddr.to_text(segments[:first]) + box_label(name, box)
                    + multiaddr.to_text(segments[first + 1:]))
        return [(label(box), box) for box in (None, *info.boxes)]

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
            now = time.monotonic()
            wait = min([self.trust.refresh_in(p) for p in held] + [REFRESH_LOOK]
                       + [at - now for at, _ in retry_at.values()])
            gevent.sleep(max(REFRESH_MIN_WAIT, wait))
            for name in held:
                if not self.trust.needs_credential(name) or retry_at.get(name, (0, 0))[0] > time.monotonic():
                    continue
                before = self.trust.own.get(name)
                try:
                    self._project_hop(name, [], True, HANDSHAKE_TIMEOUT)
                    failure = None if self._renewed(name, before) else "refused"
                except (NodeError, SecureError, DecodeError) as exc:
                    failure = str(exc)
                if failure:  # unreachable, or no longer a member: ask again, less and less often
                    backoff = min(retry_at[name][1] * 2, REFRESH_RETRY_MAX) if name in retry_at else REFRESH_RETRY
                    retry_at[name] = (time.monotonic() + backoff, backoff)
                    log.warning("project %s: cannot refresh our credential: %s (again in %g s)", name, failure,
                                backoff)
                    continue
                retry_at.pop(name, None)
                self.node.counters["credentials_refreshed"] += 1
                self.channels.present(self.trust.own[name].encode())

    def _relay_policy(self, relay_authorized):
        """Who may register relays here: listed identities and/or project members (at a relay
        box: those that proved, in the channel they register over, a credential of its project)."""
        policies = []
        if relay_authorized:
            policies.append(lambda msg, name: None if msg.peer in relay_authorized else
                            f"{msg.peer or 'an unauthenticated node'} may not create relays at node {self.node.name} "
                            "(register over a secure channel as an authorized identity)")
        if self.authority is not None:
            policies.append(lambda msg, name: self.authority.relay_policy(msg.peer, name))
        if self.relay_box_of is not None:
            policies.append(self._box_policy)
        if not policies:
            return None
        return lambda msg, name: next(filter(None, (p(msg, name) for p in policies)), None)

    def _box_credential_lapsed(self, end, project: str) -> None:
        """A peer's credential of our project lapsed in one of its channels here (removed, or
        the project node is away): its relays here end and its names are free (another
        member may now hold them, as the project allows), and the channel closes, so that
        the peer sees it and registers again once it holds a fresh credential."""
        if project == self.relay_box_of:
            log.info("project %s: the credential of %s lapsed; its relays here end", project, end.peer)
            self.forwarding.release(end.peer)
            end.close(notify=True)

    def _box_policy(self, msg, name: str) -> str | None:
        """A relay box of a project: the registration's channel must carry a credential of it
        (the relay then ends with that credential, when its holder is removed)."""
        project = self.relay_box_of
        end = self.channels.first_hop(msg.return_route)
        if end is None or end.proved_until(project) <= time.time():
            return (f"{msg.peer or 'an unauthenticated node'} presented no unexpired credential of project "
                    f"{project} in its secure channel to relay box {self.node.name}")
        return relay_refusal(project, msg.peer, self.trust.attributes_of(msg.peer, project), name)

    @property
    def identifier(self) -> str:
        return self.channels.identity.identifier

    def drain(self, grace: float) -> None:
        """Stop taking new connections, then give open portal connections `grace` seconds."""
        for inlet in self.inlets.values():
            inlet.server.stop()
        for listener in list(self.tcp.listeners.values()):
            listener.close()
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and self.open_portal_connections():
            gevent.sleep(0.1)

    def _portal_streams(self):
        for portal in (*self.inlets.values(), *self.outlets.values()):
            yield from portal.streams

    def open_portal_connections(self) -> int:
        return sum(len(i.streams) for i in self.inlets.values()) + sum(len(o.streams) for o in self.outlets.values())

    def shutdown(self) -> None:
        if self._refresher is not None:
            self._refresher.kill(block=False)
        for fetching in list(self._fetching.values()):
            fetching.kill(block=False)
        for inlet in list(self.inlets.values()):
            inlet.close()
        self.channels.close()
        for client in list(self.relays.clients.values()):
            client.stop()
        self.tcp.close()
        self.node.stop()

    # --- node -------------------------------------------------------------------------------
    def show(self) -> dict:
        return {
            "name": self.node.name, "pid": self.pid, "identifier": self.identifier,
            "secure_channel_listeners": self.secure_channel_listener_list(),
            "listeners": [l.describe() for l in self.tcp.listeners.values()],
            "transports": self.transports(),
            "relays": self.relay_list(),
            "inlets": self.inlet_list(), "outlets": self.outlet_list(),
            "services": sorted(a.inner.decode() for a, w in self.node.workers.items()
                               if not isinstance(w, TcpConnection) and len(a.inner) != 32),
            "counters": dict(self.node.counters),
        }

    # --- tcp --------------------------------------------------------------------------------
    def tcp_listener_create(self, address: str) -> dict:
        return self.tcp.listen(address).describe()

    def tcp_listener_list(self) -> list:
        return [l.describe() for l in self.tcp.listeners.values()]

    def tcp_listener_delete(self, id: str) -> None:
        item = self.tcp.find(id)
        if not isinstance(item, TcpListener):
            raise NotFound(f"no TCP listener {id!r}")
        item.close()

    def tcp_connection_create(self, address: str) -> dict:
        """A persistent connection: dialled again whenever it is lost, under the same address."""
        if not address.startswith("/"):
            return self.tcp.connect(multiaddr.parse_hostport(address), persistent=True).describe()
        segments = routes.parse_route(address)
        if len(segments) != 1 or not isinstance(segments[0], (multiaddr.Tcp, multiaddr.Node)):
            raise RouteError(f"{address!r} is not a TCP address (HOST:PORT, /ip4/A/tcp/P or /node/N)")
        return self.tcp.connect(routes.tcp_target(segments[0], self.node_lookup), persistent=True).describe()

    def transports(self) -> list:
        return ([l.describe() for l in self.tcp.listeners.values()]
                + [c.describe() for c in self.tcp.connections.values()])

    def tcp_connection_list(self) -> list:
        return self.transports()

    def tcp_connection_delete(self, id: str) -> None:
        item = self.tcp.find(id)
        if not isinstance(item, TcpConnection):
            raise NotFound(f"no TCP connection {id!r}")
        item.close()

    # --- relays -----------------------------------------------------------------------------
    def relay_create(self, name: str, at, wait: bool = True, authorized: list | None = None) -> dict:
        """`at`: the route to the relay node, or a list of them: the name is registered at each
        (at each relay box of a project, for `/project/NAME`)."""
        ats = [at] if isinstance(at, str) else list(at or ())
        if not ats:
            raise BadArgument("a relay needs the route to at least one relay node (--at)")
        for text in ats:
            routes.parse_route(text)  # fail fast on bad text before anything is opened
        ways = self._relay_routes(ats, check_identifiers(authorized))
        clients = self.relays.create(name, [label for label, _resolve in ways], dict(ways).get, wait)
        return {"address": f"/service/{clients[0].relay_address}", **clients[0].describe(),
                "at_each": [client.describe() for client in clients]}

    def relay_attach(self, name: str, at: str, authorized: list | None = None, only: str | None = None) -> list:
        """Register `name` at one more relay node (each relay box of a project; `only`: the
        one with that label), in the background (a topology's relay, one item per relay
        node: a reload that adds or removes one leaves the others alone)."""
        routes.parse_route(at)
        return [self.relays.attach(name, label, resolve).describe()
                for label, resolve in self._relay_routes([at], check_identifiers(authorized)) if only in (None, label)]

    def _relay_routes(self, ats: list, authorized) -> list:
        """(label, how a registration resolves its route to one relay node): with its own
        connections (a relay owns them, and closes them when it is lost)."""
        def resolver(text, box):
            return lambda: self.resolve(text, reuse=False, authorized=authorized, box=box)
        return [(label, resolver(text, box)) for text in ats for label, box in self.each_box(text)]

    def relay_detach(self, name: str, at: str, only: str | None = None) -> None:
        self.relays.detach(name, [only] if only else [label for label, _box in self.each_box(at)])

    def relay_list(self) -> list:
        return ([c.describe() for c in self.relays.clients.values()]
                + [r.describe() for r in self.forwarding.relays.values()])

    def relay_delete(self, name: str, at: str | None = None) -> None:
        """All of the name's registrations, or those at `at` (each relay box of a project)."""
        if at is None:
            self.relays.delete(name)
        else:
            self.relay_detach(name, at)

    # --- messages ---------------------------------------------------------------------------
    def message_send(self, route: str, message: str, timeout: float = DEFAULT_MESSAGE_TIMEOUT,
                     hex: bool = False) -> dict:
        try:
            payload = bytes.fromhex(message) if hex else bare.encode_string(message)
        except ValueError:
            raise BadArgument(f"{message!r} is not hexadecimal") from None
        resolved = self.resolve(route)
        reply = self.node.request(resolved.route, payload, timeout)
        try:
            text = bare.decode_string(reply.payload)
        except DecodeError:
            return {"reply": reply.payload.hex(), "encoding": "hex"}
        return {"reply": text, "encoding": "utf-8"}

    # --- secure channels ----------------------------------------------------------------------
    def secure_channel_listener_create(self, address: str = "api", authorized: list | None = None) -> dict:
        return self.channels.listen(address.removeprefix("/service/"), check_identifiers(authorized)).describe()

    def secure_channel_listener_list(self) -> list:
        return [l.describe() for l in self.channels.listeners.values()]

    def secure_channel_listener_delete(self, address: str) -> None:
        self.channels.stop_listener(address.removeprefix("/service/"))

    def secure_channel_create(self, to: str, authorized: list | None = None, suite: str | None = None,
                              timeout: float = DEFAULT_MESSAGE_TIMEOUT) -> dict:
        if not isinstance(routes.parse_route(to)[-1], multiaddr.Local):
            raise RouteError(f"route {to!r} must end at a secure channel listener (e.g. /service/api)")
        prefix, _, listener = to.rpartition("/service/")
        resolved = self.resolve(prefix, authorized=authorized) if prefix else routes.Resolved((), [])
        end = self.channels.create(resolved.route + (Address.local(listener),), to,
                                   check_identifiers(authorized), suite and suite_by_name(suite), timeout)
        return end.describe()

    def secure_channel_list(self) -> list:
        return [e.describe() for e in self.channels.ends.values()]

    def secure_channel_show(self, address: str) -> dict:
        return self.channels.find(address).describe()

    def secure_channel_delete(self, address: str) -> None:
        self.channels.find(address).close(notify=True)

    # --- projects ---------------------------------------------------------------------------
    def project_info(self) -> dict:
        project = self._authority().project
        target = multiaddr.parse_hostport(self.project_node.public_address)
        return ProjectInfo(project, target.host, target.port, self.channels.identity.public_key,
                           self._authority().boxes()).to_json()

    def project_ticket(self, attributes: dict | None = None, relay: str | None = None,
                       expires_in: int = 3600, box: str | None = None) -> dict:
        """`box`: HOST:PORT where members reach the node that spends the ticket, which becomes
        one more relay box of the project (listed in `project information` from then on)."""
        authority = self._authority()
        if not isinstance(attributes or {}, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in (attributes or {}).items()):
            raise BadArgument(f"attributes must map names to text, not {attributes!r}")
        if relay is not None and not isinstance(relay, str):
            raise BadArgument(f"relay must be a relay name, not {relay!r}")
        attributes = dict(attributes or {})
        if BOX_ATTRIBUTE in attributes:
            raise BadArgument(f"attribute {BOX_ATTRIBUTE} is set by --relay-box only")
        if relay:
            attributes[RELAY_ATTRIBUTE] = relay
        if box is not None:
            if not isinstance(box, str):
                raise BadArgument(f"box must be HOST:PORT, not {box!r}")
            if RELAY_ATTRIBUTE in attributes:
                raise BadArgument("a relay box ticket takes no relay name (--relay, or attribute relay)")
            target = multiaddr.check_reachable(multiaddr.parse_hostport(box))
            listed = next((b for b in authority.boxes() if b.target == target), None)
            if listed is not None:
                raise BadArgument(f"project {authority.project} has a relay box at {target.hostport} already "
                                  f"({listed.identifier}): remove that member first")
            attributes[BOX_ATTRIBUTE] = target.hostport
        if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in <= 0:
            raise BadArgument(f"expires_in must be a positive number of seconds, not {expires_in!r}")
        return {"project": self.project_info(), "token": authority.create_ticket(attributes, expires_in)}

    def project_enroll(self, project: dict, token: str) -> dict:
        """Spend a ticket. The ticket's copy of the project's description adds to the one this
        node has (say, a newer project.json listing more relay boxes); it replaces it only when
        the authority differs."""
        info = ProjectInfo.from_json(project)
        known = self.trust.projects.get(info.name)
        self.trust.projects[info.name] = known.merged(info) if known is not None else info
        reply = self.node.request(self.resolve(f"/project/{info.name}").route + (Address.local("authority"),),
                                  authority_wire.encode_enroll(token), 10.0)
        ok, body = authority_wire.decode_reply(reply.payload)
        if not ok:
            raise ProjectError(f"enrollment refused: {body}")
        self._fetch_credential(info.name, reply.return_route[0])  # a member now: our first credential
        self._start_refresher()
        return {"project": info.name, "identifier": self.identifier}

    def project_update(self, info: ProjectInfo) -> ProjectInfo | None:
        """A project's description read again (a topology reload): the relay boxes it lists
        from now on. Returns the one it replaces. Another authority under the same name is
        another project: that takes a restart."""
        known = self.trust.projects.get(info.name)
        if known is not None and known.authority_key != info.authority_key:
            raise ProjectError(f"project {info.name} now names another authority; restart the node to use it")
        self.trust.projects[info.name] = info
        return known

    def project_credential(self, name: str) -> bool:
        """Ask the project node for a fresh credential now: whether it gave one (False: not a
        member, or no longer)."""
        before = self.trust.own.get(name)
        end = self.resolve(f"/project/{name}").route[0]  # fetches one when we have none (or an old one)
        if self.trust.own.get(name) is before:
            self._fetch_credential(name, end)
        return self._renewed(name, before)

    def _renewed(self, name: str, before) -> bool:
        """Whether we hold a credential of `name` other than `before` (fetched since)."""
        got = self.trust.own.get(name)
        return got is not None and got is not before

    def project_member_remove(self, identifier: str) -> None:
        self._authority().remove_member(identifier)
        self.forwarding.release(identifier)

    def project_member_list(self) -> list:
        return self._authority().member_list()

    def _authority(self) -> Authority:
        if self.authority is None:
            raise ProjectError(f"node {self.node.name} is not a project node")
        return self.authority

    def project_list(self) -> list:
        return [p.to_json() for p in self.trust.projects.values()]

    # --- portals ----------------------------------------------------------------------------
    def outlet_create(self, to: str, address: str = "outlet", alias: str | None = None,
                      authorized: list | None = None, allow: dict | None = None,
                      proxy_protocol: str | None = None) -> dict:
        """`proxy_protocol` "v1" or "v2": each connection to the target starts with a PROXY
        protocol header naming the inlet's client (wire/proxy_protocol.py)."""
        if proxy_protocol not in (None, *proxy_protocol_wire.VERSIONS):
            raise BadArgument(f"proxy protocol {proxy_protocol!r}: use v1 or v2")
        name = address.removeprefix("/service/")
        alias = alias or name
        if alias in self.outlets:
            raise AddressInUse(f"an outlet with alias {alias!r} already exists")
        multiaddr.parse_hostport(to)
        outlet = Outlet(self.node, name, to, alias, check_identifiers(authorized), allow, self.trust.attribute_sets,
                        per_route=self.limits.outlet_connections_per_route, proxy_protocol=proxy_protocol)
        self.node.register(outlet)
        self.outlets[alias] = outlet
        return outlet.describe()

    def outlet_list(self) -> list:
        return [o.describe() for o in self.outlets.values()]

    def outlet_show(self, alias: str) -> dict:
        outlet = self.outlets.get(alias)
        if outlet is None:
            raise NotFound(f"no outlet {alias!r}")
        return outlet.describe()

    def outlet_delete(self, alias: str) -> None:
        outlet = self.outlets.pop(alias, None)
        if outlet is None:
            raise NotFound(f"no outlet {alias!r}")
        self.node.unregister(outlet.address)
        outlet.stop()

    def inlet_create(self, bind: str, to, alias: str | None = None, check_route: bool = True,
                     authorized: list | None = None, balance: bool = False) -> dict:
        """`to`: the route to the outlet, or a list of routes to it (failover in their order,
        or `balance` over the ones that answer: node/portals/inlet_routes.py). A route whose text is
        wrong (or names a node or project this host does not know) fails the request.
        Whatever a route meets on the way (a relay that is down, a wrong relay or outlet
        name, an outlet node with the wrong identity) does not: the inlet is made and keeps
        checking; with `check_route` the answer waits up to INLET_CHECK_WAIT for the first
        checks, and its `state`, `last_error` and `routes` say what they found."""
        alias = alias or new_alias()
        if alias in self.inlets:
            raise AddressInUse(f"an inlet with alias {alias!r} already exists")
        texts = [to] if isinstance(to, str) else list(to or ())
        if not texts or len(set(texts)) != len(texts):
            raise BadArgument("an inlet needs one or more different routes to its outlet (--to)")
        authorized = check_identifiers(authorized)
        for text in texts:
            if check_route:
                routes.check(text, self.node_lookup, self.trust.projects)
            else:  # a topology's: the nodes it names may start later
                routes.parse_route(text)

        def resolver(text, box):
            return lambda timeout: self.resolve(text, authorized=authorized, handshake_timeout=timeout, box=box).route

        ways = [(label, resolver(text, box)) for text in texts for label, box in self.each_box(text)]
        inlet = Inlet(self.node, bind, ways, alias, authorized,
                      links_failed=self.channels.check_first_hop, balance=balance)
        self.inlets[alias] = inlet
        if check_route:
            inlet.wait_checked(INLET_CHECK_WAIT)
        return inlet.describe()

    def inlet_list(self) -> list:
        return [i.describe() for i in self.inlets.values()]

    def inlet_show(self, alias: str) -> dict:
        inlet = self.inlets.get(alias)
        if inlet is None:
            raise NotFound(f"no inlet {alias!r}")
        return inlet.describe()

    def inlet_delete(self, alias: str) -> None:
        inlet = self.inlets.pop(alias, None)
        if inlet is None:
            raise NotFound(f"no inlet {alias!r}")
        inlet.close()
