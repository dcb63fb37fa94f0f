"""`ockam relay ...` (and its older name `ockam forwarder ...`)."""

from __future__ import annotations

from appliance.cli import client
from appliance.cli.common import node_arg, route_arg
from appliance.cli.errors import CliError
from appliance.cli.output import Output, condition, last_error, table, warn

USAGE = """
Usage:
  ockam {cmd} create [<name>] --at=<route>... [--to=<node>] [--authorized=<identifier>...]
  ockam {cmd} list [--to=<node>] [--at=<node>] [--node=<node>]
  ockam {cmd} delete <name> [--to=<node>] [--at=<node>] [--node=<node>] [--relay-node=<route>]

Creates, on node --to (default: the default node), a relay named <name> (default: default)
at the node that --at routes to; messages sent there to /service/forward_to_<name> reach --to.
Several --at register the same name at each of those relay nodes, each registration kept
alive on its own (inlets with a route through each fail over between them); `create` fails
only when none registers. --at /project/NAME registers at each relay box of the project.
`list` and `delete` name the node with --to or --at; `delete --relay-node ROUTE` stops only
the registration at that relay node (ROUTE as `list` shows it under At; /project/NAME: at
each of its relay boxes) and keeps the others.
With /secure/api in --at the registration travels in a secure channel, and --authorized
requires the relay node to authenticate as one of these identifiers.
"""


def usage(command: str) -> str:
    return USAGE.format(cmd=command)


def run(_command: str, args, out: Output) -> None:
    # the node is --to (Ockam's name), or --at as elsewhere; in `create`, --at is the relay's route
    ats = args["--at"] or []  # a list: --at repeats in `create`
    if not args["create"] and len(ats) > 1:
        raise CliError(f"'ockam relay {'list' if args['list'] else 'delete'}' takes one node (--at)", code=2)
    node = node_arg(args["--to"] or args["--node"] or (None if args["create"] else (ats or [None])[0]))
    if args["create"]:
        result = client.call(node, "relay.create", {"name": args["<name>"] or "default",
                                                   "at": [route_arg(at) for at in ats],
                                                   "authorized": args["--authorized"] or None})
        for each in result["at_each"]:
            if each["state"] != "up" and not out.quiet:
                warn(f"relay {each['name']} at {each['at']}: not registered ({each['last_error']}); "
                     "it keeps trying")
        out.result(result["address"], data=result,
                   human=f"Relay created at {', '.join(ats)}\n  Address: {result['address']}")
    elif args["list"]:
        relays = client.call(node, "relay.list")
        rows = [[r["name"], r["direction"], r.get("at", ""), condition(r), r["remote_route"], last_error(r)]
                for r in relays]
        out.result(table(["Name", "Direction", "At", "State", "Remote route", "Last error"], rows), data=relays)
    elif args["delete"]:
        only_at = args["--relay-node"]
        client.call(node, "relay.delete", {"name": args["<name>"], **({"at": only_at} if only_at else {})})
        out.result(f"Deleted relay {args['<name>']}{' at ' + only_at if only_at else ''}")
