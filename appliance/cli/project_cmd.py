"""`ockam project ...`: a self-hosted project node (relay + authority) and its members."""

from __future__ import annotations

import json

from appliance.cli import client
from appliance.cli.common import node_arg
from appliance.cli.errors import CliError
from appliance.cli.output import Output, table
from appliance.host import projects, state

USAGE = """
Usage:
  ockam project information [<name>] [--at=<node>]
  ockam project ticket [<name>] [--at=<node>] [--attribute=<key=value>...] [--relay=<name>] [--relay-box=<host:port>] [--expires-in=<seconds>]
  ockam project enroll <ticket> [--identity=<name>]
  ockam project list
  ockam project member list [<name>] [--at=<node>]
  ockam project member remove <identifier> [<name>] [--at=<node>]

A project node is a node whose topology has a [project] section. 'information' prints what
edge nodes need (save it, then 'ockam node create NAME --project FILE'). 'ticket' makes a
one-time enrollment ticket; 'enroll' spends it, making this identity a member (members may
create relays at the project and get credentials with the ticket's attributes; --relay
limits the member to that relay name). 'member remove' revokes a member: it gets no new
credential, and its channels to the project's nodes close when the one it has expires
([project] credential_ttl, default 600 s).

A project may have more relay boxes than its project node (failover, scale-out): make a
ticket with --relay-box HOST:PORT (where members will reach it), and give it to a node with
that listener whose topology has [membership] relay_box = true. Once it has enrolled,
'information' lists it; members given the new project.json register each relay at every
box, and inlets through /project/NAME take any box that answers.

Options:
  --expires-in=<seconds>  how long the ticket can be used [default: 3600]
"""


def usage(_command: str) -> str:
    return USAGE


def run(_command: str, args, out: Output) -> None:
    if args["member"]:
        node = project_node(args["<name>"], args["--at"])
        if args["remove"]:
            client.call(node, "project.member.remove", {"identifier": args["<identifier>"]})
            out.result(f"{args['<identifier>']} is no longer a member")
        else:
            members = client.call(node, "project.member.list")
            out.result(table(["Identifier", "Attributes"], [[m["identifier"], json.dumps(m["attributes"])]
                                                             for m in members]), data=members)
    elif args["information"]:
        info = client.call(project_node(args["<name>"], args["--at"]), "project.info")
        lines = [f"Project {info['name']}", f"  Id: {info['id']}", f"  Identity: {info['identity']}",
                 f"  Access route: {info['access_route']}"]
        lines += [f"  Relay box: {box['route']} ({box['identity']})" for box in info["access_routes"][1:]]
        out.result("\n".join(lines), data=info)
    elif args["ticket"]:
        attributes = dict(parse_attribute(a) for a in args["--attribute"])
        try:
            expires_in = int(args["--expires-in"])
        except ValueError:
            raise CliError("--expires-in must be a number of seconds", code=2) from None
        ticket = client.call(project_node(args["<name>"], args["--at"]), "project.ticket",
                             {"attributes": attributes, "relay": args["--relay"], "expires_in": expires_in,
                              "box": args["--relay-box"]})
        out.result(projects.encode_ticket(ticket))
    elif args["enroll"]:
        ticket = projects.decode_ticket(args["<ticket>"])
        result = enroll(ticket, args["--identity"])
        out.result(f"{result['identifier']} is now a member of project {result['project']}", data=result)
    elif args["list"]:
        known = [p.to_json() for p in projects.load_all()]
        rows = [[p["name"], p["identity"], ", ".join(box["route"] for box in p["access_routes"])] for p in known]
        out.result(table(["Name", "Identity", "Access routes"], rows), data=known)


def parse_attribute(text: str) -> tuple:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise CliError(f"--attribute takes KEY=VALUE, not {text!r}", code=2)
    return key, value


def project_node(name: str | None, at: str | None) -> str:
    """The local project node: --at, or the running node that serves project `name`."""
    if at:
        return node_arg(at)
    for node in state.node_names():
        response = client.raw_call(node, "project.info", {}, 5.0)
        if response and response.get("ok") and response["result"]["name"] == (name or response["result"]["name"]):
            return node
    raise CliError(f"no running project node{' for ' + name if name else ''} here (give --at NODE)")


def enroll(ticket: dict, identity_name: str | None) -> dict:
    """Spend a ticket as this identity, from a temporary node; remember the project."""
    from appliance.node.project.info import ProjectInfo

    result = client.call_in_process("project.enroll", {"project": ticket["project"], "token": ticket["token"]},
                                    identity_name)
    info = ProjectInfo.from_json(ticket["project"])
    known = next((p for p in projects.load_all() if p.name == info.name), None)
    projects.save(known.merged(info) if known is not None else info)  # a newer project.json keeps its boxes
    return result
