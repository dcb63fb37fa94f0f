"""One running node: its parts built and wired together, and its life cycle.

Each part has one job: `tcp` carries links, `channels` secure channels, `forwarding` the
relays others register here and `relays` the ones this node registers elsewhere,
`membership` this node's projects and credentials, `resolver` turns route text into routes,
`portals` keeps inlets and outlets, `route_watch` checks the routes their streams run over.
`control` is what the control API serves (control/operations.py).
"""

from __future__ import annotations

import os
import time

from appliance.limits.budgets import Limits
from appliance.node import routes
from appliance.node.channels.channel import SecureChannels
from appliance.node.clock import Clock
from appliance.node.control.operations import ControlOperations
from appliance.node.node import Node
from appliance.node.portals.registry import Portals
from appliance.node.portals.routewatch import RouteWatch
from appliance.node.project.authority import Authority
from appliance.node.project.info import ProjectNode
from appliance.node.project.membership import Membership
from appliance.node.project.trust import Trust
from appliance.node.relays.policy import RelayBox, registration_policy
from appliance.node.relays.relay import DEFAULT_GRACE, ForwardingService, Relays, SecretBook
from appliance.node.authorized import check_identifiers
from appliance.node.resolver import Resolver
from appliance.node.services import start_default_services
from appliance.node.transport.liveness import DEFAULT_LINK_TIMEOUT
from appliance.node.transport.tcp import TcpListener, TcpTransport
from appliance.secure.identity import Identity


class NodeRuntime:
    def __init__(self, name: str, node_lookup: routes.NodeLookup = lambda _name: None,
                 max_frame: int | None = None, identity: Identity | None = None,
                 relay_authorized=None, projects=(), project_node: ProjectNode | None = None,
                 link_timeout: float = DEFAULT_LINK_TIMEOUT, relay: bool = True,
                 relay_grace: float = DEFAULT_GRACE, limits: Limits = Limits(),
                 relay_secrets: SecretBook | None = None, relay_box_of: str | None = None,
                 credential_store: tuple = (None, None), clock: Clock | None = None):
        """`relay_box_of`: the project this node is one more relay box of (its members may
        register relays here, proving it with their credentials). `credential_store`: (dict,
        save) where the node's own credentials are kept across restarts. `clock`: the time of every
        part (node/clock.py; tests give a VirtualClock)."""
        identity = identity or Identity.generate()
        self.node = Node(name, clock)
        self.tcp = TcpTransport(self.node, **({"max_frame": max_frame} if max_frame else {}),
                                link_timeout=link_timeout, limits=limits)
        start_default_services(self.node)
        self.trust = Trust(projects, own_project=(project_node.name, identity.public_key) if project_node else None,
                           kept=credential_store[0], save=credential_store[1], holder=identity.identifier,
                           wall=self.node.clock.wall)
        self.channels = SecureChannels(self.node, identity, self.trust, limits)
        self.channels.listen("api")
        self.authority = None
        self._project_node = project_node
        if project_node is not None:
            self.authority = Authority(self.node, project_node.name, identity, project_node.members,
                                       project_node.save, project_node.credential_ttl)
            self.node.register(self.authority)
        box = RelayBox(relay_box_of, name, self.channels, self.trust) if relay_box_of is not None else None
        self.forwarding = ForwardingService(
            self.node, registration_policy(name, check_identifiers(relay_authorized), self.authority, box),
            offered=relay or project_node is not None or bool(relay_authorized) or relay_box_of is not None,
            grace=relay_grace, limits=limits, clock=self.node.clock.now)
        self.node.register(self.forwarding)
        if box is not None:
            box.end_relays_on_lapse(self.forwarding)
        self.relays = Relays(self.node, relay_secrets)
        self.membership = Membership(self.node, self.tcp, self.channels, self.trust, relay_box_of)
        self.resolver = Resolver(self.tcp, self.channels, self.membership, node_lookup)
        self.portals = Portals(self.node, self.resolver, self.channels, self.trust, limits)
        self.route_watch = RouteWatch(self.node, self.portals.streams, self.tcp.monitor.interval,
                                      route_dead=self.channels.path_broken)
        self.control = ControlOperations(self)
        self.pid = os.getpid()
        self.started = time.time()

    @property
    def identifier(self) -> str:
        return self.channels.identity.identifier

    def listen(self, address: str) -> TcpListener:
        """The node's TCP listener; a project node with no public address configured is
        reached at this one."""
        listener = self.tcp.listen(address)
        if self._project_node is not None and not self._project_node.public_address:
            self._project_node = self._project_node._replace(public_address=listener.address)
        return listener

    @property
    def project_public_address(self) -> str:
        """Where members reach this project node (`project information`)."""
        return self._project_node.public_address

    def drain(self, grace: float) -> None:
        """Stop taking new connections, then give open portal connections `grace` seconds."""
        self.portals.stop_accepting()
        for listener in list(self.tcp.listeners.values()):
            listener.close()
        self.portals.wait_closed(grace)

    def shutdown(self) -> None:
        self.membership.close()
        self.portals.close()
        self.channels.close()
        for client in list(self.relays.clients.values()):
            client.stop()
        self.tcp.close()
        self.node.stop()
