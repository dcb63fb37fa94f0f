"""`ockam node ...`: background node processes and their state."""

from __future__ import annotations

import os
import random
import shutil

from appliance.cli import client
from appliance.cli.common import node_arg
from appliance.cli.errors import CliError
from appliance.cli.output import Output, condition, last_error, table
from appliance.config import topology as topology_file
from appliance.config.topology import Topology
from appliance.host import identities, launch, process, projects, state

USAGE = """
Usage:
  ockam node create [<name>] [--tcp-listener-address=<addr>] [--identity=<name>] [--relay-authorized=<identifier>...] [--project=<file>] [--enrollment-ticket=<ticket>] [--as-project=<name>] [--config=<file>] [--metrics-address=<addr>] [--foreground]
  ockam node run <file> [--metrics-address=<addr>]
  ockam node list
  ockam node show [<name>]
  ockam node delete [<name>] [--all]
  ockam node start [<name>]
  ockam node stop [<name>]
  ockam node reload [<name>]
  ockam node logs [<name>]
  ockam node default [<name>]

Options:
  --tcp-listener-address=<addr>  where the node's TCP listener binds (default: 127.0.0.1:0); a node
                                 given one is a relay: others may register relays at it
  --identity=<name>              the identity it authenticates as (default: the default identity)
  --relay-authorized=<identifier>  only these identities may create relays at this node (over a
                                 secure channel; it makes the node a relay); by default anyone may
  --project=<file>               the project it belongs to ('ockam project information --output json')
  --enrollment-ticket=<ticket>   enroll its identity in the ticket's project first
  --as-project=<name>            make it the project node (relay + authority) of project <name>
  --config=<file>                start what this TOML topology declares (see config/*.toml)
  --metrics-address=<addr>       serve /metrics (Prometheus), /health and /ready over HTTP at
                                 HOST:PORT, or PORT alone on loopback (TOML: [node] metrics_address)
  --foreground                   run in this process instead of in the background

'node run <file>' runs the node a TOML topology describes in the foreground, as a service does.
'node reload' (or SIGHUP) applies an edited topology file without touching unchanged items.
  --all                          delete every node
"""

ADJECTIVES = ("brave", "calm", "eager", "fair", "gentle", "keen", "lucky", "quiet", "swift", "witty")
NOUNS = ("otter", "falcon", "badger", "heron", "lynx", "marten", "osprey", "wren", "yak", "zebu")


def usage(_command: str) -> str:
    return USAGE


def run(_command: str, args, out: Output) -> int:
    for verb in ("create", "run", "list", "show", "delete", "start", "stop", "reload", "logs", "default"):
        if args[verb]:
            return globals()[f"node_{verb}"](args, out) or 0
    raise CliError("unknown node command")


def node_create(args, out: Output) -> None:
    path, listener, identity = args["--config"], args["--tcp-listener-address"], args["--identity"]
    relay_authorized, as_project, metrics = args["--relay-authorized"], args["--as-project"], args["--metrics-address"]
    identities.load(identity) if identity else identities.load_or_create_default()  # fail early
    if args["--project"]:
        projects.save(projects.read_project_file(args["--project"]))
    if args["--enrollment-ticket"]:
        from appliance.cli.project_cmd import enroll

        enroll(projects.decode_ticket(args["--enrollment-ticket"]), identity)
    def load(environ=None) -> Topology:
        return launch.load_topology(path, listener, relay_authorized, as_project, identity, metrics, environ)

    created = launch.creation_args(path, listener, identity, relay_authorized, as_project, metrics)

    topology = load()
    name = state.check_name(args["<name>"] or topology.name
                            or f"{random.choice(ADJECTIVES)}-{random.choice(NOUNS)}")
    if args["--foreground"]:
        background = bool(os.environ.get(process.BACKGROUND_ENV))  # then stderr is the log file already
        return serve(launch.node_service(name, topology, load, created, out.verbose,
                                          log_to_stderr=not background))
    refuse_if_running(name)
    start_background(name, created)
    if state.default_node() is None:
        state.set_default_node(name)
    info = state.read_node(name)
    out.result(f"/node/{name}", data=info,
               human=f"Node {name} created\n  Route: /node/{name} "
                     f"(/dnsaddr/localhost/tcp/{info['listener_address'].rsplit(':', 1)[1]})")


def node_run(args, out: Output) -> int:
    name = launch.load_topology(args["<file>"]).name
    if name:  # a second copy would take the node's control socket and state from the first
        refuse_if_running(name)
    service = launch.file_node_service(args["<file>"], verbosity=out.verbose, metrics=args["--metrics-address"])
    if state.default_node() is None:  # as `node create` does: commands without --at reach it
        state.set_default_node(name)
    return serve(service)


def refuse_if_running(name: str) -> None:
    if state.exists(name) and client.is_up(name):
        raise CliError(f"node {name} already exists and is running")


def start_background(name: str, argv: list[str]) -> None:
    directory = state.node_dir(name)
    fresh = not directory.exists()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        process.spawn_node(name, argv, lambda: client.is_up(name))
    except process.ProcessError as exc:
        if fresh:
            shutil.rmtree(directory, ignore_errors=True)
        raise CliError(f"node {name} failed to start: {exc}") from None


def serve(service) -> int:
    service.run()
    return 0


def node_status(name: str) -> tuple[dict, bool]:
    info = state.read_node(name)
    return info, client.is_up(name)


def node_list(_args, out: Output) -> None:
    default = state.default_node()
    rows, data = [], []
    for name in state.node_names():
        info, up = node_status(name)
        data.append({"name": name, "status": "UP" if up else "DOWN", "pid": info.get("pid") if up else None,
                     "listener_address": info.get("listener_address"), "default": name == default})
        rows.append([name, "UP" if up else "DOWN", info.get("pid") if up else "-",
                     info.get("listener_address") or "-", "yes" if name == default else ""])
    text = table(["Name", "Status", "PID", "Listener", "Default"], rows) if rows else "No nodes"
    out.result(text, data=data)


def node_show(args, out: Output) -> None:
    name = node_arg(args["<name>"])
    info, up = node_status(name)
    details = client.call(name, "node.show") if up else {}
    port = (info.get("listener_address") or ":?").rsplit(":", 1)[1]
    lines = [
        "Node:",
        f"  Name: {name}",
        f"  Status: {'UP' if up else 'DOWN'}",
        "  Route To Node:",
        f"    Short: /node/{name}",
        f"    Verbose: /dnsaddr/localhost/tcp/{port}",
    ]
    if up:
        lines.append(f"  Identity: {details['identifier']}")
        lines.append("  Secure Channel Listeners:")
        lines += [f"    {l['address']}" for l in details["secure_channel_listeners"]]
    if up:
        lines.append("  Transports:")
        lines += [f"    {t['type']} {t['mode']} {t['socket_address']} {t['worker_address']}".rstrip()
                  for t in details["transports"]]
        if info.get("metrics_address"):
            lines.append(f"  Metrics: http://{info['metrics_address']}/metrics (and /health, /ready)")
        lines.append("  Relays:")
        lines += [f"    {r['name']} ({r['direction']}) {r.get('at', '')} {r['remote_route']}: {condition(r)}"
                  + (f", last error: {last_error(r)}" if r.get("last_error") else "") for r in details["relays"]]
        lines.append("  Inlets:")
        lines += [f"    {i['alias']} {i['bind_address']} => {i['outlet_route']}: {condition(i)}"
                  + (f", last error: {last_error(i)}" if i.get("last_error") else "") for i in details["inlets"]]
        lines.append("  Outlets:")
        lines += [f"    {o['alias']} {o['address']} => {o['target']}" for o in details["outlets"]]
        lines.append("  Services:")
        lines += [f"    /service/{s}" for s in details["services"]]
    text = "\n".join(lines)
    out.result(text, data={"name": name, "status": "UP" if up else "DOWN", **info, **details})


def node_delete(args, out: Output) -> None:
    names = state.node_names() if args["--all"] else [node_arg(args["<name>"])]
    for name in names:
        stop_node(name)
        shutil.rmtree(state.node_dir(name), ignore_errors=True)
        if state.default_node() is None:
            remaining = state.node_names()
            state.set_default_node(remaining[0] if remaining else None)
    out.result("\n".join(f"Deleted node {n}" for n in names) or "No nodes to delete", data=names)


def stop_node(name: str) -> None:
    """Ask the node for its pid (proof it is that node) and to stop; wait for that process to
    end (killing it if it does not). A node that does not answer is signalled."""
    try:
        pid = client.call(name, "node.show", timeout=5)["pid"]
        client.call(name, "node.stop", timeout=5)
        asked = True
    except CliError:
        asked = False
        try:
            pid = state.read_node(name).get("pid")
        except state.StateError:
            return
    if pid:
        process.stop_process(pid, asked=asked)


def node_start(args, out: Output) -> None:
    name = node_arg(args["<name>"])
    info, up = node_status(name)
    if up:
        raise CliError(f"node {name} is already running")
    start_background(name, info.get("args") or [])
    out.result(f"/node/{name}", human=f"Node {name} started")


def node_stop(args, out: Output) -> None:
    name = node_arg(args["<name>"])
    if not client.is_up(name):
        raise CliError(f"node {name} is not running")
    stop_node(name)
    out.result(f"Stopped node {name}")


def node_reload(args, out: Output) -> None:
    """Re-read the node's topology file and apply the difference (as SIGHUP does)."""
    name = node_arg(args["<name>"])
    summary = client.call(name, "node.reload", {"environ": shell_variables(name)})
    sources = "; ".join(f"{var} from {where}" for var, where in summary.get("variables", {}).items())
    out.result(f"Reloaded node {name}: {len(summary['added'])} started, {summary['removed']} stopped, "
               f"{summary['unchanged']} unchanged" + (f" (variables: {sources})" if sources else "")
               + (f"\n  {summary['project']}" if summary.get("project") else ""), data=summary)


def shell_variables(name: str) -> dict:
    """The variables the node's topology file uses that are set here (also set but empty), as
    `config check` reads them."""
    created = state.read_node(name).get("args") or []
    if "--config" not in created:
        return {}
    try:
        with open(created[created.index("--config") + 1], "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except (OSError, IndexError):
        return {}  # the node says what is wrong with its file
    return {var: os.environ[var] for var in topology_file.variables(text) if var in os.environ}


def node_logs(args, out: Output) -> None:
    name = node_arg(args["<name>"])
    out.result(str(state.log_path(name)))


def node_default(args, out: Output) -> None:
    if args["<name>"]:
        name = node_arg(args["<name>"])
        state.set_default_node(name)
        out.result(name, human=f"Default node is now {name}")
        return
    name = state.default_node()
    if name is None:
        raise CliError("there is no default node")
    out.result(name)


