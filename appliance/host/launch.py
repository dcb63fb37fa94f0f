"""How a node is put together from its topology file and the options it was created with:
for `node create`, `node run`, `node start`, and the systemd and Windows services alike."""

from __future__ import annotations

import dataclasses
import os

from appliance.config import topology as topology_file
from appliance.config.topology import ConfigError, Topology
from appliance.host import identities, state
from appliance.wire import multiaddr


def load_topology(path: str | None, listener: str | None = None, relay_authorized=(), as_project=None,
                  identity: str | None = None, metrics: str | None = None, environ=None) -> Topology:
    """The file's topology (or an empty one), with command-line options taking precedence.
    A reload calls this again, so the options keep overriding the edited file."""
    topology = topology_file.load(path, environ) if path else Topology()
    if identity:
        topology = dataclasses.replace(topology, identity=identity)
    if as_project:
        state.check_name(as_project)
        topology = dataclasses.replace(topology, project=(as_project, "", topology_file.DEFAULT_CREDENTIAL_TTL))
    if listener:  # a node given a listener address is there to be reached: a relay, unless its file says not
        topology = dataclasses.replace(topology, tcp_listener_address=listener,
                                       relay=True if topology.relay is None else topology.relay)
    if relay_authorized:
        topology = dataclasses.replace(topology, relay_authorized=tuple(relay_authorized))
    if metrics:
        multiaddr.parse_bind(metrics)
        topology = dataclasses.replace(topology, metrics_address=metrics)
    return topology


def creation_args(path: str | None, listener: str | None, identity: str | None, relay_authorized=(),
                  as_project=None, metrics: str | None = None) -> list[str]:
    """How to start this node again (background spawn, `node start`)."""
    args = ["--tcp-listener-address", listener] if listener else []
    args += ["--metrics-address", metrics] if metrics else []
    args += ["--as-project", as_project] if as_project else []
    args += ["--identity", identity] if identity else []
    for identifier in relay_authorized:
        args += ["--relay-authorized", identifier]
    return args + (["--config", os.path.abspath(path)] if path else [])


def node_service(name: str, topology: Topology, load, created_args: list[str], verbosity: int,
                 log_to_stderr: bool):
    """The NodeService for `topology`; `load(environ)` reads it again, the same way, when the
    node is reloaded."""
    from appliance.host import runner  # gevent and the whole runtime: only when a node runs here

    state.node_dir(name).mkdir(mode=0o700, parents=True, exist_ok=True)
    runner.setup_logging(name, verbosity, to_stderr=log_to_stderr)
    identity = identities.load(topology.identity) if topology.identity else identities.load_or_create_default()[1]
    return runner.NodeService(name, topology, created_args, identity, load_topology=load)


def file_node_service(config: str, verbosity: int = 0, log_to_stderr: bool = True, metrics: str | None = None):
    """The NodeService a topology file describes (for `node run` and service managers)."""
    def load(environ=None) -> Topology:
        return load_topology(config, metrics=metrics, environ=environ)

    topology = load()
    if not topology.name:
        raise ConfigError(config, None, "node.name", "missing (needed to run a node from a file)")
    return node_service(topology.name, topology, load, creation_args(config, None, None, metrics=metrics),
                        verbosity, log_to_stderr)
