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

from appliance.config import topology as topology_file
from appliance.config.topology import Topology
from appliance.host import state
from appliance.host.deployment import Deployment, ReloadError
from appliance.node.api import ControlServer
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


def reload_from_file(deployment: Deployment) -> dict:
    """Read the topology file again and apply it (SIGHUP and `ockam node reload`)."""
    source = deployment.topology.source
    if not source:
        raise ReloadError("this node was not started from a topology file")
    try:
        new = topology_file.load(source)
    except topology_file.ConfigError as exc:
        raise ReloadError(f"{exc}; the previous configuration is still in force") from None
    return deployment.reload(new)


def run_node(name: str, topology: Topology, created_args: list[str], identity: Identity) -> None:
    """Start the node, serve until told to stop, then shut down cleanly."""
    runtime = NodeRuntime(name, node_lookup=state.listener_of, identity=identity,
                          relay_authorized=topology.relay_authorized)
    deployment = Deployment(runtime, topology)

    def reload() -> dict:
        try:
            summary = reload_from_file(deployment)
        except ReloadError as exc:
            log.error("reload failed: %s", exc)
            raise
        log.info("reloaded %s: %s", topology.source, summary)
        return summary

    try:
        listener = runtime.tcp.listen(topology.tcp_listener_address)
        stop = Event()
        state.write_node(name, {
            "name": name, "pid": os.getpid(), "listener_address": listener.address,
            "identifier": identity.identifier,
            "args": created_args, "started": time.time(),
        })
        control = ControlServer(runtime, str(state.socket_path(name)), extra_ops={
            "node.stop": lambda: gevent.spawn_later(0.05, stop.set) and None,
            "node.reload": reload,
        })
        try:
            deployment.start()
            for signum in (signal.SIGTERM, signal.SIGINT):
                gevent.signal_handler(signum, stop.set)
            gevent.signal_handler(signal.SIGHUP, lambda: gevent.spawn(_logged, reload))
            log.info("node %s is up, listening on %s", name, listener.address)
            stop.wait()
            log.info("node %s stopping", name)
        finally:
            control.close()
    finally:
        deployment.stop()
        runtime.shutdown()
    state.update_node(name, pid=None)


def _logged(fn) -> None:
    """Run fn, whose errors are already logged (a signal handler has nobody to report to)."""
    try:
        fn()
    except ReloadError:
        pass
