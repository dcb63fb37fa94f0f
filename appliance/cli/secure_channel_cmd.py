"""`ockam secure-channel ...` and `ockam secure-channel-listener ...`."""

from __future__ import annotations

from appliance.cli import client
from appliance.cli.common import node_arg, route_arg
from appliance.cli.output import Output, table

CHANNEL_USAGE = """
Usage:
  ockam secure-channel create --to=<route> [--from=<node>] [--authorized=<identifier>...] [--suite=<suite>]
  ockam secure-channel list [--at=<node>] [--from=<node>]
  ockam secure-channel show <address> [--at=<node>] [--from=<node>]
  ockam secure-channel delete <address> [--at=<node>] [--from=<node>]

Creates an end-to-end encrypted, mutually authenticated channel (Noise XX) from node
--from to the listener at the end of --to (e.g. /node/n2/service/api) and prints its
address, /service/<hex>: put it first in later routes. --authorized: accept only these
peer identifiers. --suite: aesgcm (default where the CPU has AES) or chachapoly.
"""

LISTENER_USAGE = """
Usage:
  ockam secure-channel-listener create [<address>] [--at=<node>] [--authorized=<identifier>...]
  ockam secure-channel-listener list [--at=<node>]
  ockam secure-channel-listener delete <address> [--at=<node>]

Every node already listens at /service/api; <address> defaults to api.
"""


def usage(command: str) -> str:
    return CHANNEL_USAGE if command == "secure-channel" else LISTENER_USAGE


def run(command: str, args, out: Output) -> None:
    node = node_arg(args["--at"] or args.get("--from"))
    if command == "secure-channel-listener":
        return run_listener(node, args, out)
    if args["create"]:
        end = client.call(node, "secure_channel.create", {
            "to": route_arg(args["--to"]), "authorized": args["--authorized"] or None, "suite": args["--suite"]})
        out.result(end["address"], data=end,
                   human=f"Secure channel to {end['peer']} created\n  Address: {end['address']}")
    elif args["list"]:
        ends = client.call(node, "secure_channel.list")
        rows = [[e["address"], e["role"], e["peer"], e["route"]] for e in ends]
        out.result(table(["Address", "Role", "Peer identifier", "Route"], rows), data=ends)
    elif args["show"]:
        end = client.call(node, "secure_channel.show", {"address": args["<address>"]})
        out.result("\n".join(f"{k}: {v}" for k, v in end.items()), data=end)
    elif args["delete"]:
        client.call(node, "secure_channel.delete", {"address": args["<address>"]})
        out.result(f"Deleted secure channel {args['<address>']}")


def run_listener(node: str, args, out: Output) -> None:
    if args["create"]:
        listener = client.call(node, "secure_channel_listener.create", {
            "address": args["<address>"] or "api", "authorized": args["--authorized"] or None})
        out.result(listener["address"], data=listener)
    elif args["list"]:
        listeners = client.call(node, "secure_channel_listener.list")
        rows = [[l["address"], ", ".join(l["authorized"]) or "(anyone)"] for l in listeners]
        out.result(table(["Address", "Authorized"], rows), data=listeners)
    elif args["delete"]:
        client.call(node, "secure_channel_listener.delete", {"address": args["<address>"]})
        out.result(f"Deleted secure channel listener {args['<address>']}")
