"""`ockam node ...`: background node processes and their state."""

from __future__ import annotations

import random
import shutil
import sys

from appliance.cli import client
from appliance.cli.common import node_arg
from appliance.cli.errors import CliError
from appliance.cli.output import Output, table
from appliance.host import process, state

USAGE = """
Usage:
  ockam node create [<name>] [--tcp-listener-address=<addr>] [--foreground]
  ockam node list
  ockam node show [<name>]
  ockam node delete [<name>] [--all]
  ockam node start [<name>]
  ockam node stop [<name>]
  ockam node logs [<name>]
  ockam node default [<name>]

Options:
  --tcp-listener-address=<addr>  where the node's TCP listener binds [default: 127.0.0.1:0]
  --foreground                   run in this process instead of in the background
  --all                          delete every node
"""

ADJECTIVES = ("brave", "calm", "eager", "fair", "gentle", "keen", "lucky", "quiet", "swift", "witty")
NOUNS = ("otter", "falcon", "badger", "heron", "lynx", "marten", "osprey", "wren", "yak", "zebu")


def usage(_command: str) -> str:
    return USAGE


def run(_command: str, args, out: Output) -> int:
    for verb in ("create", "list", "show", "delete", "start", "stop", "logs", "default"):
        if args[verb]:
            return globals()[f"node_{verb}"](args, out) or 0
    raise CliError("unknown node command")


def node_create(args, out: Output) -> None:
    name = state.check_name(args["<name>"] or f"{random.choice(ADJECTIVES)}-{random.choice(NOUNS)}")
    listener = args["--tcp-listener-address"]
    if args["--foreground"]:
        return run_foreground(name, listener, out)
    if state.exists(name) and client.is_up(name):
        raise CliError(f"node {name} already exists and is running")
    start_background(name, listener)
    if state.default_node() is None:
        state.set_default_node(name)
    info = state.read_node(name)
    out.result(f"/node/{name}", data=info,
               human=f"Node {name} created\n  Route: /node/{name} "
                     f"(/dnsaddr/localhost/tcp/{info['listener_address'].rsplit(':', 1)[1]})")


def start_background(name: str, listener: str) -> None:
    directory = state.node_dir(name)
    fresh = not directory.exists()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    argv = ["--tcp-listener-address", listener]
    try:
        process.spawn_node(name, argv, lambda: client.is_up(name))
    except process.ProcessError as exc:
        if fresh:
            shutil.rmtree(directory, ignore_errors=True)
        raise CliError(f"node {name} failed to start: {exc}") from None


def run_foreground(name: str, listener: str, out: Output) -> int:
    from appliance.host import runner
    from appliance.node.errors import NodeError
    from appliance.wire.errors import WireError

    state.node_dir(name).mkdir(mode=0o700, parents=True, exist_ok=True)
    runner.setup_logging(name, out.verbose, to_stderr=sys.stderr.isatty())
    try:
        runner.run_node(name, listener, ["--tcp-listener-address", listener])
    except (NodeError, WireError) as exc:
        raise CliError(str(exc)) from None
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
        f"Node:",
        f"  Name: {name}",
        f"  Status: {'UP' if up else 'DOWN'}",
        f"  Route To Node:",
        f"    Short: /node/{name}",
        f"    Verbose: /dnsaddr/localhost/tcp/{port}",
    ]
    if up:
        lines.append("  Transports:")
        lines += [f"    {t['type']} {t['mode']} {t['socket_address']} {t['worker_address']}".rstrip()
                  for t in details["transports"]]
        lines.append("  Relays:")
        lines += [f"    {r['name']} ({r['direction']}) {r.get('at', '')} {r['remote_route']}"
                  for r in details["relays"]]
        lines.append("  Inlets:")
        lines += [f"    {i['alias']} {i['bind_address']} => {i['outlet_route']}" for i in details["inlets"]]
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
    try:
        info = state.read_node(name)
    except state.StateError:
        return
    pid = info.get("pid")
    if pid:
        process.stop_process(pid, name)


def node_start(args, out: Output) -> None:
    name = node_arg(args["<name>"])
    info, up = node_status(name)
    if up:
        raise CliError(f"node {name} is already running")
    listener = info.get("listener_address") or info.get("requested_listener") or "127.0.0.1:0"
    start_background(name, listener)
    out.result(f"/node/{name}", human=f"Node {name} started")


def node_stop(args, out: Output) -> None:
    name = node_arg(args["<name>"])
    if not client.is_up(name):
        raise CliError(f"node {name} is not running")
    stop_node(name)
    out.result(f"Stopped node {name}")


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


