"""Run one node in the foreground until SIGTERM/SIGINT or a `node.stop` request.

This is what a background node, a systemd unit and a Windows service all execute: start
the node, then everything its topology declares, in order (listener, connections, relays,
outlets, inlets), and serve until told to stop.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import signal
import sys
import time

import gevent
from gevent.event import Event

from appliance.config.topology import Topology
from appliance.host import state
from appliance.node.api import ControlServer
from appliance.node.demo import start_demo_http
from appliance.node.runtime import NodeRuntime
from appliance.secure.identity import Identity

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_MAX_BYTES = 10 << 20
LOG_BACKUPS = 3


def setup_logging(name: str, verbosity: int, to_stderr: bool) -> None:
    level = logging.DEBUG if verbosity >= 2 else logging.INFO
    handlers: list[logging.Handler] = [logging.handlers.RotatingFileHandler(
        state.log_path(name), maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS)]
    if to_stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(level=level, format=LOG_FORMAT, handlers=handlers, force=True)


def apply_topology(runtime: NodeRuntime, topology: Topology) -> list:
    """Start what the topology declares; returns extra servers to close at shutdown.

    Relays and inlets do not wait for their far side: a service may start before the relay
    box is reachable, and they connect (and re-connect) in the background."""
    extras = []
    if topology.demo_http:
        extras.append(start_demo_http(topology.demo_http))
        log.info("demo HTTP service on %s", topology.demo_http)
    for target in topology.tcp_connections:
        runtime.tcp_connection_create(target)
        log.info("TCP connection to %s", target)
    for relay in topology.relays:
        runtime.relay_create(relay.name, relay.at, wait=False)
        log.info("relay %s at %s", relay.name, relay.at)
    for outlet in topology.outlets:
        runtime.outlet_create(outlet.to, outlet.address, outlet.alias)
        log.info("outlet %s => %s", outlet.address, outlet.to)
    for inlet in topology.inlets:
        created = runtime.inlet_create(inlet.bind, inlet.to, inlet.alias, check_route=False)
        log.info("inlet %s => %s (try: curl %s)", created["bind_address"], inlet.to, created["bind_address"])
    return extras


def run_node(name: str, topology: Topology, created_args: list[str], identity: Identity) -> None:
    """Start the node, serve until told to stop, then shut down cleanly."""
    runtime = NodeRuntime(name, node_lookup=state.listener_of, identity=identity,
                          relay_authorized=topology.relay_authorized)
    extras = []
    try:
        listener = runtime.tcp.listen(topology.tcp_listener_address)
        stop = Event()
        state.write_node(name, {
            "name": name, "pid": os.getpid(), "listener_address": listener.address,
            "identifier": identity.identifier,
            "args": created_args, "started": time.time(),
        })
        control = ControlServer(runtime, str(state.socket_path(name)),
                                extra_ops={"node.stop": lambda: gevent.spawn_later(0.05, stop.set) and None})
        try:
            extras = apply_topology(runtime, topology)
            for signum in (signal.SIGTERM, signal.SIGINT):
                gevent.signal_handler(signum, stop.set)
            log.info("node %s is up, listening on %s", name, listener.address)
            stop.wait()
            log.info("node %s stopping", name)
        finally:
            control.close()
    finally:
        for server in extras:
            server.stop(timeout=0)
        runtime.shutdown()
    state.update_node(name, pid=None)
