"""`ockam tcp-outlet ...` and `ockam tcp-inlet ...`."""

from __future__ import annotations

from appliance.cli import client
from appliance.cli.common import node_arg, route_arg
from appliance.cli.output import Output, condition, last_error, table, warn

OUTLET_USAGE = """
Usage:
  ockam tcp-outlet create --to=<target> [--at=<node>] [--from=<address>] [--alias=<alias>] [--authorized=<identifier>...] [--allow=<key=value>...] [--proxy-protocol=<version>]
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
  --proxy-protocol=<version> v1 or v2: start each connection to the target with a HAProxy PROXY
                             header naming the inlet's client (nginx: listen ... proxy_protocol)
"""

INLET_USAGE = """
Usage:
  ockam tcp-inlet create --to=<route>... [--at=<node>] [--from=<bind>] [--alias=<alias>] [--authorized=<identifier>...] [--balance]
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
  --balance      with several --to: spread new connections over the routes that answer
                 (default: failover, the first route that answers, in the order given)

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
    routes = " | ".join(route["route"] for route in item.get("routes", ())) or item["outlet_route"]
    return [item["alias"], item["bind_address"], routes, condition(item), item["connections"], last_error(item)]


def run(command: str, args, out: Output) -> None:
    node = node_arg(args["--at"] or args["--node"])
    if command == "tcp-outlet":
        create, kind = {"to": args["--to"], "address": args["--from"],
                        "proxy_protocol": args["--proxy-protocol"]}, "tcp_outlet"
        if args["--allow"]:
            from appliance.cli.project_cmd import parse_attribute

            create["allow"] = dict(parse_attribute(a) for a in args["--allow"])
        columns, row, shown = OUTLET_COLUMNS, outlet_row, ("address", "target")
    else:
        create = {"bind": args["--from"], "to": [route_arg(to) for to in args["--to"] or ()] or None,
                  "balance": bool(args["--balance"])}
        kind = "tcp_inlet"
        columns, row, shown = INLET_COLUMNS, inlet_row, ("bind_address", "outlet_route")
    if args["create"]:
        item = client.call(node, f"{kind}.create",
                           {"alias": args["--alias"], "authorized": args["--authorized"] or None, **create})
        for route in item.get("routes", ()):
            if route["state"] != "up" and not out.quiet:
                warn(f"inlet {item['alias']}: the outlet at {route['route']} did not answer within 2 s "
                     f"({route['last_error'] or 'no answer yet'}); the inlet is created and keeps trying")
        out.result(item[shown[0]], data=item,
                   human=f"Created {command} {item['alias']}: {item[shown[0]]} => {item[shown[1]]}")
    elif args["list"]:
        items = client.call(node, f"{kind}.list")
        out.result(table(columns, [row(i) for i in items]), data=items)
    elif args["show"]:
        item = client.call(node, f"{kind}.show", {"alias": args["<alias>"]})
        lines = [f"{command.title().replace('-', '')} {item['alias']}:"]
        lines += [f"  {name}: {value}" for name, value in zip(columns[1:], row(item)[1:])]
        if kind == "tcp_inlet" and len(item["routes"]) > 1:
            lines.append(f"  Routes ({'balance' if item['balance'] else 'failover'}):")
            lines += [f"    {route['route']}: {condition(route)}, last error: {last_error(route)}"
                      for route in item["routes"]]
        if kind == "tcp_inlet" and item.get("route_rtt") is not None:
            lines.append(f"  Route round trip: {item['route_rtt'] * 1000:.1f} ms")
        out.result("\n".join(lines), data=item)
    elif args["delete"]:
        client.call(node, f"{kind}.delete", {"alias": args["<alias>"]})
        out.result(f"Deleted {command} {args['<alias>']}")
