"""`ockam tcp-outlet ...` and `ockam tcp-inlet ...`."""

from __future__ import annotations

from appliance.cli import client
from appliance.cli.common import node_arg, route_arg
from appliance.cli.output import Output, condition, last_error, table, warn

OUTLET_USAGE = """
Usage:
  ockam tcp-outlet create --to=<target> [--at=<node>] [--from=<address>] [--alias=<alias>] [--authorized=<identifier>...] [--allow=<key=value>...]
  ockam tcp-outlet list [--at=<node>] [--node=<node>]
  ockam tcp-outlet show <alias> [--at=<node>] [--node=<node>]
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
  ockam tcp-inlet show <alias> [--at=<node>] [--node=<node>]
  ockam tcp-inlet delete <alias> [--at=<node>] [--node=<node>]

Options:
  --from=<bind>  the local HOST:PORT clients connect to [default: 127.0.0.1:4000]
  --to=<route>   the route to an outlet: /node/NAME, /ip4/A/tcp/P or /dnsaddr/H/tcp/P hops,
                 then /service/forward_to_RELAY through a relay, /secure/api for an end-to-end
                 secure channel, and the outlet, e.g. /node/n2/service/forward_to_edge/secure/api/service/outlet
  --at=<node>    the node to create it on (default: the default node); --node is the same
  --alias=<alias>  its name in `list` and `delete` (default: a random one)
  --authorized=<identifier>  talk only to an outlet whose node authenticates as one of these

`create` waits up to 2 s for the outlet to answer and says on stderr when it does not; the
inlet is created either way and keeps checking. While its route is down (the relay or the
outlet is not there), clients are refused at once. `list` and `show` give its state (up,
connecting, down), since when, and the last error.
"""


def usage(command: str) -> str:
    return OUTLET_USAGE if command == "tcp-outlet" else INLET_USAGE


OUTLET_COLUMNS = ["Alias", "Address", "Target", "Connections"]
INLET_COLUMNS = ["Alias", "Bind address", "Outlet route", "State", "Connections", "Last error"]


def outlet_row(item: dict) -> list:
    return [item["alias"], item["address"], item["target"], item["connections"]]


def inlet_row(item: dict) -> list:
    return [item["alias"], item["bind_address"], item["outlet_route"], condition(item), item["connections"],
            last_error(item)]


def run(command: str, args, out: Output) -> None:
    node = node_arg(args["--at"] or args["--node"])
    if command == "tcp-outlet":
        create, kind = {"to": args["--to"], "address": args["--from"]}, "tcp_outlet"
        if args["--allow"]:
            from appliance.cli.project_cmd import parse_attribute

            create["allow"] = dict(parse_attribute(a) for a in args["--allow"])
        columns, row, shown = OUTLET_COLUMNS, outlet_row, ("address", "target")
    else:
        create, kind = {"bind": args["--from"], "to": args["--to"] and route_arg(args["--to"])}, "tcp_inlet"
        columns, row, shown = INLET_COLUMNS, inlet_row, ("bind_address", "outlet_route")
    if args["create"]:
        item = client.call(node, f"{kind}.create",
                           {"alias": args["--alias"], "authorized": args["--authorized"] or None, **create})
        if item.get("state", "up") != "up" and not out.quiet:
            warn(f"inlet {item['alias']}: the outlet at {item['outlet_route']} did not answer within 2 s "
                 f"({item['last_error'] or 'no answer yet'}); the inlet is created and keeps trying")
        out.result(item[shown[0]], data=item,
                   human=f"Created {command} {item['alias']}: {item[shown[0]]} => {item[shown[1]]}")
    elif args["list"]:
        items = client.call(node, f"{kind}.list")
        out.result(table(columns, [row(i) for i in items]), data=items)
    elif args["show"]:
        item = client.call(node, f"{kind}.show", {"alias": args["<alias>"]})
        lines = [f"{command.title().replace('-', '')} {item['alias']}:"]
        lines += [f"  {name}: {value}" for name, value in zip(columns[1:], row(item)[1:])]
        if kind == "tcp_inlet" and item.get("route_rtt") is not None:
            lines.append(f"  Route round trip: {item['route_rtt'] * 1000:.1f} ms")
        out.result("\n".join(lines), data=item)
    elif args["delete"]:
        client.call(node, f"{kind}.delete", {"alias": args["<alias>"]})
        out.result(f"Deleted {command} {args['<alias>']}")
