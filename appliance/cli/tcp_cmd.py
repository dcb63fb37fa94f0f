"""`ockam tcp-listener ...` and `ockam tcp-connection ...`."""

from __future__ import annotations

from appliance.cli import client
from appliance.cli.common import node_arg
from appliance.cli.output import Output, table

LISTENER_USAGE = """
Usage:
  ockam tcp-listener create <address> [--at=<node>]
  ockam tcp-listener list [--at=<node>] [--node=<node>]
  ockam tcp-listener delete <id> [--at=<node>] [--node=<node>]
"""

CONNECTION_USAGE = """
Usage:
  ockam tcp-connection create --to=<address> [--at=<node>] [--from=<node>]
  ockam tcp-connection list [--at=<node>] [--node=<node>]
  ockam tcp-connection delete <id> [--at=<node>] [--node=<node>]

<address> is HOST:PORT, /ip4/A/tcp/P, /dnsaddr/H/tcp/P or /node/NAME.
"""

HEADERS = ["Transport ID", "Transport Type", "Mode", "Socket address", "Worker address"]


def usage(command: str) -> str:
    return LISTENER_USAGE if command == "tcp-listener" else CONNECTION_USAGE


def transports_table(items: list[dict]) -> str:
    return table(HEADERS, [[t["id"], t["type"], t["mode"], t["socket_address"], t["worker_address"]]
                           for t in items])


def run(command: str, args, out: Output) -> None:
    kind = "tcp_listener" if command == "tcp-listener" else "tcp_connection"
    node = node_arg(args.get("--at") or args.get("--from") or args.get("--node"))
    if args["create"]:
        address = args["<address>"] if kind == "tcp_listener" else args["--to"]
        item = client.call(node, f"{kind}.create", {"address": address})
        value = item["socket_address"] if kind == "tcp_listener" else item["worker_address"]
        out.result(value, data=item, human=f"Created {item['mode'].lower()} {item['socket_address']}\n"
                                             f"{transports_table([item])}")
    elif args["list"]:
        items = client.call(node, f"{kind}.list")
        out.result(transports_table(items), data=items)
    elif args["delete"]:
        client.call(node, f"{kind}.delete", {"id": args["<id>"]})
        out.result(f"Deleted {args['<id>']}")
