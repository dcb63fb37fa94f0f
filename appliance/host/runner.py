"""Run one node in the foreground until SIGTERM/SIGINT or a `node.stop` request.

This is what a background node, a systemd unit and a Windows service all execute.
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

from appliance.host import state
from appliance.node.api import ControlServer
from appliance.node.runtime import NodeRuntime

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


def run_node(name: str, listener: str, created_args: list[str]) -> None:
    """Start the node, serve until told to stop, then shut down cleanly."""
    runtime = NodeRuntime(name, node_lookup=state.listener_of)
    listener_obj = runtime.tcp.listen(listener)
    stop = Event()
    state.write_node(name, {
        "name": name, "pid": os.getpid(), "listener_address": listener_obj.address,
        "requested_listener": listener, "args": created_args, "started": time.time(),
    })
    control = ControlServer(runtime, str(state.socket_path(name)),
                            extra_ops={"node.stop": lambda: gevent.spawn_later(0.05, stop.set) and None})
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stop.set)
    log.info("node %s is up, listening on %s", name, listener_obj.address)
    stop.wait()
    log.info("node %s stopping", name)
    control.close()
    runtime.shutdown()
    state.update_node(name, pid=None)
