"""What a topology file started on a node, and how a new version of the file is applied.

A reload compares the items of the old and new topology: items in both are left alone
(with their live connections), removed ones are stopped, new ones started. If anything
fails, what this reload did is undone and the node keeps its old configuration.
"""

from __future__ import annotations

import logging
from typing import Callable, NamedTuple

from appliance.config.topology import (InletSpec, ListenerSpec, OutletSpec, RelaySpec, Topology, UdpInletSpec,
                                       UdpOutletSpec)
from appliance.node.control.api import ControlError
from appliance.node.demo import start_demo_http
from appliance.node.authorized import check_identifiers

log = logging.getLogger(__name__)

# node-level settings that a reload cannot change without a restart
RESTART_FIELDS = ("name", "identity", "tcp_listener_address", "relay_authorized", "demo_http", "project",
                  "member_of", "enrollment_ticket", "relay_box", "link_timeout", "relay", "relay_grace", "limits",
                  "metrics_address")


class ReloadError(ControlError):
    """The new topology could not be applied; the old one is still in force. A mistake in the
    file keeps its exit code (2), as in `config check`."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class Item(NamedTuple):
    describe: str
    start: Callable[[], None]
    stop: Callable[[], None]


class Deployment:
    def __init__(self, runtime, topology: Topology):
        self.runtime = runtime
        self.topology = topology
        self.running: dict = {}  # item key -> Item
        self.demo = None

    def start(self) -> None:
        if self.topology.demo_http:
            self.demo = start_demo_http(self.topology.demo_http)
            log.info("demo HTTP service on %s", self.topology.demo_http)
        for key, item in self._items(self.topology).items():
            item.start()
            self.running[key] = item
            log.info("started %s", item.describe)
        if self.demo is not None and self.topology.inlets:
            log.info("try it: curl %s", self.runtime.control.inlet_list()[0]["bind_address"])

    def stop(self) -> None:
        if self.demo is not None:
            self.demo.stop()

    def reload(self, new: Topology, change=None) -> dict:
        """`change`: (apply, undo) of what changes in the runtime with it (a project's relay
        boxes, read again): applied before the items are worked out, and undone when the
        reload fails, before the old items are put back (they are made with what it undoes)."""
        fixed = [f for f in RESTART_FIELDS if getattr(new, f) != getattr(self.topology, f)]
        if fixed:
            raise ReloadError(f"changing {', '.join(fixed)} needs a restart; nothing was changed")
        apply, undo = change or (lambda: None, lambda: None)
        apply()
        try:
            wanted = self._items(new)
        except Exception:
            undo()
            raise
        removed = [k for k in self.running if k not in wanted]
        added = [k for k in wanted if k not in self.running]
        stopped, started = [], []
        try:
            for key in removed:
                self.running[key].stop()
                stopped.append(key)
            for key in added:
                wanted[key].start()
                started.append(key)
        except Exception as exc:
            failed = (self.running[removed[len(stopped)]] if len(stopped) < len(removed)
                      else wanted[added[len(started)]])
            for key in reversed(started):
                wanted[key].stop()
            undo()
            for key in stopped:
                self.running[key].start()
            raise ReloadError(f"{failed.describe}: {exc}; the previous configuration is still in force") from None
        for key in removed:
            log.info("reload: stopped %s", self.running.pop(key).describe)
        for key in added:
            self.running[key] = wanted[key]
            log.info("reload: started %s", wanted[key].describe)
        self.topology = new
        return {"added": [wanted[k].describe for k in added], "removed": len(removed),
                "unchanged": len(self.running) - len(added)}

    # --- one Item per thing a topology declares --------------------------------------------
    def _items(self, topology: Topology) -> dict:
        items = {}
        for target in topology.tcp_connections:
            items[("tcp", target)] = self._connection(target)
        for listener in topology.secure_channel_listeners:
            items[("listener", listener)] = self._listener(listener)
        for relay in topology.relays:  # one item per relay node (each box of a project): a reload adding
            for at in relay.at:        # one leaves the others
                for label, _box in self.runtime.resolver.each_box(at):
                    items[("relay", relay.name, label, relay.authorized)] = self._relay(relay, at, label)
        for outlet in topology.outlets:
            items[("outlet", outlet)] = self._outlet(outlet)
        for inlet in topology.inlets:  # its routes through a project: one per box, as the project is now
            ways = tuple(label for text in inlet.to for label, _box in self.runtime.resolver.each_box(text))
            items[("inlet", inlet, ways)] = self._inlet(inlet)
        for outlet in topology.udp_outlets:
            items[("udp_outlet", outlet)] = self._udp_outlet(outlet)
        for inlet in topology.udp_inlets:
            ways = tuple(label for text in inlet.to for label, _box in self.runtime.resolver.each_box(text))
            items[("udp_inlet", inlet, ways)] = self._udp_inlet(inlet)
        return items

    def _connection(self, target: str) -> Item:
        runtime, holder = self.runtime, {}

        def start():
            holder["id"] = runtime.control.tcp_connection_create(target)["id"]

        return Item(f"TCP connection to {target}", start, lambda: runtime.control.tcp_connection_delete(holder["id"]))

    def _listener(self, spec: ListenerSpec) -> Item:
        runtime = self.runtime
        return Item(f"secure channel listener {spec.address}",
                    lambda: runtime.control.secure_channel_listener_create(spec.address, list(spec.authorized)),
                    lambda: runtime.control.secure_channel_listener_delete(spec.address))

    def _relay(self, spec: RelaySpec, at: str, label: str) -> Item:
        """The registration of `spec.name` at one relay node: `at`, or one box (`label`) of
        the project `at` names."""
        runtime = self.runtime

        def attach():
            for way, resolve in runtime.resolver.registration_routes([at], check_identifiers(spec.authorized)):
                if way == label:
                    runtime.relays.attach(spec.name, label, resolve)

        return Item(f"relay {spec.name} at {label}", attach, lambda: runtime.relays.detach(spec.name, [label]))

    def _outlet(self, spec: OutletSpec) -> Item:
        runtime, alias = self.runtime, spec.alias or spec.address.removeprefix("/service/")
        return Item(f"outlet {spec.address} => {spec.to}",
                    lambda: runtime.control.outlet_create(spec.to, spec.address, alias, list(spec.authorized),
                                                          proxy_protocol=spec.proxy_protocol),
                    lambda: runtime.control.outlet_delete(alias))

    def _inlet(self, spec: InletSpec) -> Item:
        runtime, alias = self.runtime, spec.alias or f"inlet-{spec.bind}"
        return Item(f"inlet {spec.bind} => {' | '.join(spec.to)}",
                    lambda: runtime.control.inlet_create(spec.bind, list(spec.to), alias, check_route=False,
                                                         authorized=list(spec.authorized), balance=spec.balance),
                    lambda: runtime.control.inlet_delete(alias))

    def _udp_outlet(self, spec: UdpOutletSpec) -> Item:
        runtime, alias = self.runtime, spec.alias or spec.address.removeprefix("/service/")
        return Item(f"UDP outlet {spec.address} => {spec.to}",
                    lambda: runtime.control.udp_outlet_create(spec.to, spec.address, alias, list(spec.authorized)),
                    lambda: runtime.control.udp_outlet_delete(alias))

    def _udp_inlet(self, spec: UdpInletSpec) -> Item:
        runtime, alias = self.runtime, spec.alias or f"udp-inlet-{spec.bind}"
        return Item(f"UDP inlet {spec.bind} => {' | '.join(spec.to)}",
                    lambda: runtime.control.udp_inlet_create(spec.bind, list(spec.to), alias, check_route=False,
                                                             authorized=list(spec.authorized)),
                    lambda: runtime.control.udp_inlet_delete(alias))
