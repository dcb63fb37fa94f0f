"""The portals of a node: its inlets and outlets by alias, made from checked arguments."""

from __future__ import annotations

import time

import gevent

from appliance.node import routes
from appliance.node.authorized import check_identifiers
from appliance.node.errors import AddressInUse, BadArgument, NotFound
from appliance.node.portals.portal import Inlet, Outlet, new_alias
from appliance.node.portals.udp import UdpInlet, UdpOutlet
from appliance.wire import multiaddr
from appliance.wire import proxy_protocol as proxy_protocol_wire

INLET_CHECK_WAIT = 2.0  # `tcp-inlet create` says whether the outlet answered within this
UDP_HANDSHAKE_TIMEOUT = 2.0  # a UDP flow's secure channel: its client retries soon anyway (DNS: after 1-5 s)


class Portals:
    def __init__(self, node, resolver, channels, trust, limits):
        self.node, self.resolver, self.channels, self.trust, self.limits = node, resolver, channels, trust, limits
        self.inlets: dict[str, Inlet] = {}
        self.outlets: dict[str, Outlet] = {}
        self.udp_inlets: dict[str, UdpInlet] = {}
        self.udp_outlets: dict[str, UdpOutlet] = {}

    def create_outlet(self, to: str, address: str = "outlet", alias: str | None = None, authorized=None,
                      allow: dict | None = None, proxy_protocol: str | None = None) -> Outlet:
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
        return outlet

    def create_inlet(self, bind: str, to, alias: str | None = None, check_route: bool = True, authorized=None,
                     balance: bool = False) -> Inlet:
        """`to`: the route to the outlet, or a list of routes to it (failover in their order,
        or `balance` over the ones that answer: node/portals/inlet_routes.py). A route whose
        text is wrong (or names a node or project this host does not know) fails the request.
        Whatever a route meets on the way (a relay that is down, a wrong relay or outlet
        name, an outlet node with the wrong identity) does not: the inlet is made and keeps
        checking; with `check_route` it waits up to INLET_CHECK_WAIT for the first checks,
        and its `state`, `last_error` and `routes` say what they found."""
        alias = alias or new_alias()
        if alias in self.inlets:
            raise AddressInUse(f"an inlet with alias {alias!r} already exists")
        texts = self._route_texts(to)
        authorized = check_identifiers(authorized)
        self._check_routes(texts, check_route)

        def resolver(text, box):
            return lambda timeout: self.resolver.resolve(text, authorized=authorized, handshake_timeout=timeout,
                                                         box=box).route

        ways = [(label, resolver(text, box)) for text in texts for label, box in self.resolver.each_box(text)]
        inlet = Inlet(self.node, bind, ways, alias, authorized, links_failed=self.channels.check_first_hop,
                      balance=balance)
        self.inlets[alias] = inlet
        if check_route:
            inlet.wait_checked(INLET_CHECK_WAIT)
        return inlet

    def create_udp_outlet(self, to: str, address: str = "udp-outlet", alias: str | None = None, authorized=None,
                          allow: dict | None = None) -> UdpOutlet:
        name = address.removeprefix("/service/")
        alias = alias or name
        if alias in self.udp_outlets:
            raise AddressInUse(f"a UDP outlet with alias {alias!r} already exists")
        multiaddr.parse_hostport(to)
        outlet = UdpOutlet(self.node, name, to, alias, check_identifiers(authorized), allow, self.trust.attribute_sets,
                           self.limits.udp_flow_idle_timeout, self.limits.udp_flows_per_portal)
        try:
            self.node.register(outlet)
        except AddressInUse:
            outlet.stop()
            raise
        self.udp_outlets[alias] = outlet
        return outlet

    def create_udp_inlet(self, bind: str, to, alias: str | None = None, check_route: bool = True,
                         authorized=None) -> UdpInlet:
        """`to`: the route to the UDP outlet, or several (each flow takes the first that
        resolves, in their order); written as for a TCP inlet."""
        alias = alias or new_alias()
        if alias in self.udp_inlets:
            raise AddressInUse(f"a UDP inlet with alias {alias!r} already exists")
        texts = self._route_texts(to)
        authorized = check_identifiers(authorized)
        self._check_routes(texts, check_route)

        def resolver(text, box):
            return lambda: self.resolver.resolve(text, authorized=authorized, box=box,
                                                 handshake_timeout=UDP_HANDSHAKE_TIMEOUT).route

        ways = [(label, resolver(text, box)) for text in texts for label, box in self.resolver.each_box(text)]
        inlet = UdpInlet(self.node, bind, ways, alias, authorized, self.limits.udp_flow_idle_timeout,
                         self.limits.udp_flows_per_portal)
        self.udp_inlets[alias] = inlet
        return inlet

    @staticmethod
    def _route_texts(to) -> list:
        """An inlet's routes: one or more different ones."""
        texts = [to] if isinstance(to, str) else list(to or ())
        if not texts or len(set(texts)) != len(texts):
            raise BadArgument("an inlet needs one or more different routes to its outlet (--to)")
        return texts

    def _check_routes(self, texts: list, check_route: bool) -> None:
        """Each well written (and, with `check_route`, naming only nodes and projects this host knows)."""
        for text in texts:
            if check_route:
                routes.check(text, self.resolver.node_lookup, self.trust.projects)
            else:  # a topology's: the nodes it names may start later
                routes.parse_route(text)

    @staticmethod
    def _get(table: dict, alias: str, what: str):
        item = table.get(alias)
        if item is None:
            raise NotFound(f"no {what} {alias!r}")
        return item

    def outlet(self, alias: str) -> Outlet:
        return self._get(self.outlets, alias, "outlet")

    def inlet(self, alias: str) -> Inlet:
        return self._get(self.inlets, alias, "inlet")

    def udp_outlet(self, alias: str) -> UdpOutlet:
        return self._get(self.udp_outlets, alias, "UDP outlet")

    def udp_inlet(self, alias: str) -> UdpInlet:
        return self._get(self.udp_inlets, alias, "UDP inlet")

    def delete_outlet(self, alias: str) -> None:
        outlet = self.outlet(alias)
        del self.outlets[alias]
        self.node.unregister(outlet.address)
        outlet.stop()

    def delete_inlet(self, alias: str) -> None:
        inlet = self.inlet(alias)
        del self.inlets[alias]
        inlet.close()

    def delete_udp_outlet(self, alias: str) -> None:
        outlet = self.udp_outlet(alias)
        del self.udp_outlets[alias]
        self.node.unregister(outlet.address)
        outlet.stop()

    def delete_udp_inlet(self, alias: str) -> None:
        inlet = self.udp_inlet(alias)
        del self.udp_inlets[alias]
        inlet.close()

    def streams(self):
        for portal in (*self.inlets.values(), *self.outlets.values()):
            yield from portal.streams

    def open_connections(self) -> int:
        return sum(len(portal.streams) for portal in (*self.inlets.values(), *self.outlets.values()))

    def stop_accepting(self) -> None:
        for inlet in self.inlets.values():
            inlet.server.stop()

    def wait_closed(self, grace: float) -> None:
        """Give open portal connections `grace` seconds to end."""
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and self.open_connections():
            gevent.sleep(0.1)

    def close(self) -> None:
        for inlet in [*self.inlets.values(), *self.udp_inlets.values()]:
            inlet.close()
        for outlet in self.udp_outlets.values():
            outlet.stop()
