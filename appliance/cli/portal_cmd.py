"""`ockam tcp-outlet ...` and `ockam tcp-inlet ...`."""

from __future__ import annotations

from appliance.cli import client
from appliance.cli.common import node_arg, route_arg
from appliance.cli.output import Output, table

OUTLET_USAGE = """
Usage:
  ockam tcp-outlet create --to=<target> [--at=<node>] [--from=<address>] [--alias=<alias>] [--authorized=<identifier>...] [--allow=<key=value>...]
  ockam tcp-outlet list [--at=<node>] [--node=<node>]
  ockam tcp-outlet delete <alias> [--at=<node>] [--node=<node>]

Options:
  --from=<address>  the outlet's service address [default: /service/outlet]
  --to=<target>     HOST:PORT of the TCP service to expose
  --at=<node>       the node to create it on (default: the default node); --node is the same
  --alias=<alias>   its name in `list` and `delete` (default: a random one)
  --authorized=<identifier>  accept only inlets whose secure channel authenticates as one of these
  --allow=<key=value>        accept only peers whose project credential has these attributes
"""

INLET_USAGE = """
Usage:
  ockam tcp-inlet create --to=<route> [--at=<node>] [--from=<bind>] [--alias=<alias>] [--authorized=<identifier>...]
  ockam tcp-inlet list [--at=<node>] [--node=<node>]
  ockam tcp-inlet delete <alias> [--at=<node>] [--node=<node>]

Options:
  --from=<bind>  the local HOST:PORT clients connect to [default: 127.0.0.1:4000]
  --to=<route>   the route to an outlet: /node/NAME, /ip4/A/tcp/P or /dnsaddr/H/tcp/P hops,
                 then /service/forward_to_RELAY through a relay, /secure/api for an end-to-end
                 secure channel, and the outlet, e.g. /node/n2/service/forward_to_edge/secure/api/service/outlet
  --at=<node>    the node to create it on (default: the default node); --node is the same
  --alias=<alias>  its name in `list` and `delete` (default: a random one)
  --authorized=<identifier>  talk only to an outlet whose node authenticates as one of these
"""


def usage(command: str) -> str:
    return OUTLET_USAGE if command == "tcp-outlet" else INLET_USAGE


def run(command: str, args, out: Output) -> None:
    node = node_arg(args["--at"] or args["--node"])
    if command == "tcp-outlet":
        create, kind = {"to": args["--to"], "address": args["--from"]}, "tcp_outlet"
        if args["--allow"]:
            from appliance.cli.project_cmd import parse_attribute

            create["allow"] = dict(parse_attribute(a) for a in args["--allow"])
        columns = ["Alias", "Address", "Target", "Connections"]
        keys = ("alias", "address", "target", "connections")
        created_value = "address"
    else:
        create, kind = {"bind": args["--from"], "to": args["--to"] and route_arg(args["--to"])}, "tcp_inlet"
        columns = ["Alias", "Bind address", "Outlet route", "Connections"]
        keys = ("alias", "bind_address", "outlet_route", "connections")
        created_value = "bind_address"
    if args["create"]:
        item = client.call(node, f"{kind}.create",
                           {"alias": args["--alias"], "authorized": args["--authorized"] or None, **create})
        out.result(item[created_value], data=item,
                   human=f"Created {command} {item['alias']}: {item[keys[1]]} => {item[keys[2]]}")
    elif args["list"]:
        items = client.call(node, f"{kind}.list")
        out.result(table(columns, [[i[k] for k in keys] for i in items]), data=items)
    elif args["delete"]:
        client.call(node, f"{kind}.delete", {"alias": args["<alias>"]})
        out.result(f"Deleted {command} {args['<alias>']}")
