"""The operations the control API offers (`ockam` commands), on one running node.

`table()` lists every request a client can make; nothing else of the node can be called.
Arguments and results are plain JSON values; errors are NodeError subclasses whose text is
shown to the user as is.
"""

from __future__ import annotations

from appliance.node import routes
from appliance.node.errors import BadArgument, NotFound, RouteError
from appliance.node.project.info import BOX_ATTRIBUTE, RELAY_ATTRIBUTE, ProjectError, ProjectInfo
from appliance.node.authorized import check_identifiers
from appliance.node.transport.tcp import TcpConnection, TcpListener
from appliance.secure.suites import suite_by_name
from appliance.wire import bare, multiaddr
from appliance.wire.address import Address
from appliance.wire.errors import DecodeError

DEFAULT_MESSAGE_TIMEOUT = 10.0


class ControlOperations:
    def __init__(self, runtime):
        self.runtime = runtime
        self.node, self.tcp, self.channels = runtime.node, runtime.tcp, runtime.channels
        self.portals, self.relays, self.membership = runtime.portals, runtime.relays, runtime.membership

    def table(self) -> dict:
        """Request name -> the operation that serves it."""
        return {
            "node.show": self.show,
            "tcp_listener.create": self.tcp_listener_create,
            "tcp_listener.list": self.tcp_listener_list,
            "tcp_listener.delete": self.tcp_listener_delete,
            "tcp_connection.create": self.tcp_connection_create,
            "tcp_connection.list": self.tcp_connection_list,
            "tcp_connection.delete": self.tcp_connection_delete,
            "relay.create": self.relay_create,
            "relay.list": self.relay_list,
            "relay.delete": self.relay_delete,
            "message.send": self.message_send,
            "tcp_outlet.create": self.outlet_create,
            "tcp_outlet.list": self.outlet_list,
            "tcp_outlet.show": self.outlet_show,
            "tcp_outlet.delete": self.outlet_delete,
            "tcp_inlet.create": self.inlet_create,
            "tcp_inlet.list": self.inlet_list,
            "tcp_inlet.show": self.inlet_show,
            "tcp_inlet.delete": self.inlet_delete,
            "udp_outlet.create": self.udp_outlet_create,
            "udp_outlet.list": self.udp_outlet_list,
            "udp_outlet.show": self.udp_outlet_show,
            "udp_outlet.delete": self.udp_outlet_delete,
            "udp_inlet.create": self.udp_inlet_create,
            "udp_inlet.list": self.udp_inlet_list,
            "udp_inlet.show": self.udp_inlet_show,
            "udp_inlet.delete": self.udp_inlet_delete,
            "secure_channel_listener.create": self.secure_channel_listener_create,
            "secure_channel_listener.list": self.secure_channel_listener_list,
            "secure_channel_listener.delete": self.secure_channel_listener_delete,
            "secure_channel.create": self.secure_channel_create,
            "secure_channel.list": self.secure_channel_list,
            "secure_channel.show": self.secure_channel_show,
            "secure_channel.delete": self.secure_channel_delete,
            "project.info": self.project_info,
            "project.ticket": self.project_ticket,
            "project.enroll": self.project_enroll,
            "project.list": self.project_list,
            "project.member.remove": self.project_member_remove,
            "project.member.list": self.project_member_list,
        }

    # --- node -------------------------------------------------------------------------------
    def show(self) -> dict:
        return {
            "name": self.node.name, "pid": self.runtime.pid, "identifier": self.runtime.identifier,
            "secure_channel_listeners": self.secure_channel_listener_list(),
            "listeners": self.tcp_listener_list(),
            "transports": self.tcp_connection_list(),
            "relays": self.relay_list(),
            "inlets": self.inlet_list(), "outlets": self.outlet_list(),
            "udp_inlets": self.udp_inlet_list(), "udp_outlets": self.udp_outlet_list(),
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
        target = routes.tcp_target(segments[0], self.runtime.resolver.node_lookup)
        return self.tcp.connect(target, persistent=True).describe()

    def tcp_connection_list(self) -> list:
        """The listeners and the connections: Ockam lists both as transports."""
        return self.tcp_listener_list() + [c.describe() for c in self.tcp.connections.values()]

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
        ways = self.runtime.resolver.registration_routes(ats, check_identifiers(authorized))
        clients = self.relays.create(name, [label for label, _resolve in ways], dict(ways).get, wait)
        return {"address": f"/service/{clients[0].relay_address}", **clients[0].describe(),
                "at_each": [client.describe() for client in clients]}

    def relay_list(self) -> list:
        return ([c.describe() for c in self.relays.clients.values()]
                + [r.describe() for r in self.runtime.forwarding.relays.values()])

    def relay_delete(self, name: str, at: str | None = None) -> None:
        """All of the name's registrations, or those at `at` (each relay box of a project)."""
        if at is None:
            self.relays.delete(name)
        else:
            self.relays.detach(name, [label for label, _box in self.runtime.resolver.each_box(at)])

    # --- messages ---------------------------------------------------------------------------
    def message_send(self, route: str, message: str, timeout: float = DEFAULT_MESSAGE_TIMEOUT,
                     hex: bool = False) -> dict:
        try:
            payload = bytes.fromhex(message) if hex else bare.encode_string(message)
        except ValueError:
            raise BadArgument(f"{message!r} is not hexadecimal") from None
        resolved = self.runtime.resolver.resolve(route)
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
        resolved = (self.runtime.resolver.resolve(prefix, authorized=authorized) if prefix
                    else routes.Resolved((), []))
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
        authority = self._authority()
        target = multiaddr.parse_hostport(self.runtime.project_public_address)
        return ProjectInfo(authority.project, target.host, target.port, self.channels.identity.public_key,
                           authority.boxes()).to_json()

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
        info = ProjectInfo.from_json(project)
        self.membership.enroll(info, token)
        return {"project": info.name, "identifier": self.runtime.identifier}

    def project_member_remove(self, identifier: str) -> None:
        self._authority().remove_member(identifier)
        self.runtime.forwarding.release(identifier)

    def project_member_list(self) -> list:
        return self._authority().member_list()

    def project_list(self) -> list:
        return [p.to_json() for p in self.membership.trust.projects.values()]

    def _authority(self):
        if self.runtime.authority is None:
            raise ProjectError(f"node {self.node.name} is not a project node")
        return self.runtime.authority

    # --- portals ----------------------------------------------------------------------------
    def outlet_create(self, to: str, address: str = "outlet", alias: str | None = None,
                      authorized: list | None = None, allow: dict | None = None,
                      proxy_protocol: str | None = None) -> dict:
        return self.portals.create_outlet(to, address, alias, authorized, allow, proxy_protocol).describe()

    def outlet_list(self) -> list:
        return [o.describe() for o in self.portals.outlets.values()]

    def outlet_show(self, alias: str) -> dict:
        return self.portals.outlet(alias).describe()

    def outlet_delete(self, alias: str) -> None:
        self.portals.delete_outlet(alias)

    def inlet_create(self, bind: str, to, alias: str | None = None, check_route: bool = True,
                     authorized: list | None = None, balance: bool = False) -> dict:
        return self.portals.create_inlet(bind, to, alias, check_route, authorized, balance).describe()

    def inlet_list(self) -> list:
        return [i.describe() for i in self.portals.inlets.values()]

    def inlet_show(self, alias: str) -> dict:
        return self.portals.inlet(alias).describe()

    def inlet_delete(self, alias: str) -> None:
        self.portals.delete_inlet(alias)

    def udp_outlet_create(self, to: str, address: str = "udp-outlet", alias: str | None = None,
                          authorized: list | None = None, allow: dict | None = None) -> dict:
        return self.portals.create_udp_outlet(to, address, alias, authorized, allow).describe()

    def udp_outlet_list(self) -> list:
        return [o.describe() for o in self.portals.udp_outlets.values()]

    def udp_outlet_show(self, alias: str) -> dict:
        return self.portals.udp_outlet(alias).describe()

    def udp_outlet_delete(self, alias: str) -> None:
        self.portals.delete_udp_outlet(alias)

    def udp_inlet_create(self, bind: str, to, alias: str | None = None, check_route: bool = True,
                         authorized: list | None = None) -> dict:
        return self.portals.create_udp_inlet(bind, to, alias, check_route, authorized).describe()

    def udp_inlet_list(self) -> list:
        return [i.describe() for i in self.portals.udp_inlets.values()]

    def udp_inlet_show(self, alias: str) -> dict:
        return self.portals.udp_inlet(alias).describe()

    def udp_inlet_delete(self, alias: str) -> None:
        self.portals.delete_udp_inlet(alias)
