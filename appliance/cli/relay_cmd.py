"""`ockam relay ...` (and its older name `ockam forwarder ...`)."""

from __future__ import annotations

from appliance.cli import client
from appliance.cli.common import node_arg, route_arg
from appliance.cli.output import Output, condition, last_error, table

USAGE = """
Usage:
  ockam {cmd} create [<name>] --at=<route> [--to=<node>] [--authorized=<identifier>...]
  ockam {cmd} list [--to=<node>] [--at=<node>] [--node=<node>]
  ockam {cmd} delete <name> [--to=<node>] [--at=<node>] [--node=<node>]

Creates, on node --to (default: the default node), a relay named <name> (default: default)
at the node that --at routes to; messages sent there to /service/forward_to_<name> reach --to.
`list` and `delete` name the node with --to or --at.
With /secure/api in --at the registration travels in a secure channel, and --authorized
requires the relay node to authenticate as one of these identifiers.
"""


def usage(command: str) -> str:
    return USAGE.format(cmd=command)


def run(_command: str, args, out: Output) -> None:
    # the node is --to (Ockam's name), or --at as elsewhere; in `create`, --at is the relay's route
    node = node_arg(args["--to"] or args["--node"] or (None if args["create"] else args["--at"]))
    if args["create"]:
        result = client.call(node, "relay.create", {"name": args["<name>"] or "default",
                                                   "at": route_arg(args["--at"]),
                                                   "authorized": args["--authorized"] or None})
        out.result(result["address"], data=result,
                   human=f"Relay created at {args['--at']}\n  Address: {result['address']}")
    elif args["list"]:
        relays = client.call(node, "relay.list")
        rows = [[r["name"], r["direction"], r.get("at", ""), condition(r), r["remote_route"], last_error(r)]
                for r in relays]
        out.result(table(["Name", "Direction", "At", "State", "Remote route", "Last error"], rows), data=relays)
    elif args["delete"]:
        client.call(node, "relay.delete", {"name": args["<name>"]})
        out.result(f"Deleted relay {args['<name>']}")
