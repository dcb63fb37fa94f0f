"""`ockam tcp-outlet ...`, `ockam tcp-inlet ...`, and their UDP twins `udp-outlet` and `udp-inlet`."""

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

UDP_OUTLET_USAGE = """
Usage:
  ockam udp-outlet create --to=<target> [--at=<node>] [--from=<address>] [--alias=<alias>] [--authorized=<identifier>...] [--allow=<key=value>...]
  ockam udp-outlet list [--at=<node>] [--node=<node>]
  ockam udp-outlet show <alias> [--at=<node>] [--node=<node>]
  ockam udp-outlet delete <alias> [--at=<node>] [--node=<node>]

Options:
  --from=<address>  the outlet's service address [default: /service/udp-outlet]
  --to=<target>     HOST:PORT of the UDP service to expose
  --at=<node>       the node to create it on (default: the default node); --node is the same
  --alias=<alias>   its name in `list` and `delete` (default: its service name)
  --authorized=<identifier>  accept only inlets whose secure channel authenticates as one of these
  --allow=<key=value>        accept only peers whose project credential has these attributes

Each client of an inlet (a flow) gets a UDP socket of its own to the target, so the service
sees one source port per client. Flows end after [limits] udp_flow_idle_timeout (60 s) without
a datagram either way; an outlet holds at most udp_flows_per_portal (1 024) of them.
"""

UDP_INLET_USAGE = """
Usage:
  ockam udp-inlet create --to=<route>... [--at=<node>] [--from=<bind>] [--alias=<alias>] [--authorized=<identifier>...]
  ockam udp-inlet list [--at=<node>] [--node=<node>]
  ockam udp-inlet show <alias> [--at=<node>] [--node=<node>]
  ockam udp-inlet delete <alias> [--at=<node>] [--node=<node>]

Options:
  --from=<bind>  the local HOST:PORT clients send datagrams to [default: 127.0.0.1:5000]
  --to=<route>   the route to a UDP outlet, written as for tcp-inlet, e.g.
                 /node/n2/service/forward_to_edge/secure/api/service/udp-outlet; with several,
                 each new client takes the first that can be reached, in the order given
  --at=<node>    the node to create it on (default: the default node); --node is the same
  --alias=<alias>  its name in `list` and `delete` (default: a random one)
  --authorized=<identifier>  take answers only from an outlet whose node authenticates as one of these

Each datagram arrives whole or not at all; nothing is retransmitted. A datagram the route
cannot take now (still being made, a link that is behind) is dropped and counted (`show`).
"""

USAGES = {"tcp-outlet": OUTLET_USAGE, "tcp-inlet": INLET_USAGE, "udp-outlet": UDP_OUTLET_USAGE,
          "udp-inlet": UDP_INLET_USAGE}


def usage(command: str) -> str:
    return USAGES[command]


OUTLET_COLUMNS = ["Alias", "Address", "Target", "Connections"]
INLET_COLUMNS = ["Alias", "Bind address", "Outlet route", "State", "Connections", "Last error"]
UDP_OUTLET_COLUMNS = ["Alias", "Address", "Target", "Flows", "Datagrams in", "Datagrams out", "Dropped"]
UDP_INLET_COLUMNS = ["Alias", "Bind address", "Outlet route", "Flows", "Datagrams in", "Datagrams out", "Dropped"]


def outlet_row(item: dict) -> list:
    return [item["alias"], item["address"], item["target"], item["connections"]]


def inlet_row(item: dict) -> list:
    routes = " | ".join(route["route"] for route in item.get("routes", ())) or item["outlet_route"]
    return [item["alias"], item["bind_address"], routes, condition(item), item["connections"], last_error(item)]


def allowed(args) -> dict:
    """An outlet's --allow attributes, as its create request takes them."""
    if not args["--allow"]:
        return {}
    from appliance.cli.project_cmd import parse_attribute

    return {"allow": dict(parse_attribute(a) for a in args["--allow"])}


def udp_row(item: dict) -> list:
    where = item["address"] if "address" in item else item["bind_address"]
    to = item["target"] if "target" in item else " | ".join(item["outlet_routes"])
    dropped = ", ".join(f"{n} {reason}" for reason, n in sorted(item["dropped"].items())) or "none"
    return [item["alias"], where, to, item["flows"], item["datagrams_in"], item["datagrams_out"], dropped]


def run(command: str, args, out: Output) -> None:
    node = node_arg(args["--at"] or args["--node"])
    if command == "udp-outlet":
        create, kind = {"to": args["--to"], "address": args["--from"], **allowed(args)}, "udp_outlet"
        columns, row, shown = UDP_OUTLET_COLUMNS, udp_row, ("address", "target")
    elif command == "udp-inlet":
        create, kind = {"bind": args["--from"], "to": [route_arg(to) for to in args["--to"] or ()] or None}, "udp_inlet"
        columns, row, shown = UDP_INLET_COLUMNS, udp_row, ("bind_address", "outlet_route")
    elif command == "tcp-outlet":
        create, kind = {"to": args["--to"], "address": args["--from"],
                        "proxy_protocol": args["--proxy-protocol"], **allowed(args)}, "tcp_outlet"
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
