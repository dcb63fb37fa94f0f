"""`ockam identity ...`: the Ed25519 identities nodes authenticate as."""

from __future__ import annotations

from appliance.cli.output import Output, table
from appliance.host import identities

USAGE = """
Usage:
  ockam identity create [<name>]
  ockam identity show [<name>] [--full]
  ockam identity list
  ockam identity default [<name>]
  ockam identity delete <name>

Identities live in $OCKAM_HOME/identities (keys 0600). The first one becomes the default,
which nodes use unless created with --identity NAME.
"""


def usage(_command: str) -> str:
    return USAGE


def _name(args) -> str:
    return args["<name>"] or identities.load_or_create_default()[0]


def run(_command: str, args, out: Output) -> None:
    if args["create"]:
        name = args["<name>"] or identities.DEFAULT
        identity = identities.create(name)
        out.result(identity.identifier, human=f"Identity {name} created: {identity.identifier}")
    elif args["show"]:
        name = _name(args)
        identity = identities.load(name)
        data = {"name": name, "identifier": identity.identifier, "public_key": identity.public_key.hex()}
        full = f"Identifier: {identity.identifier}\nPublic key (Ed25519): {identity.public_key.hex()}"
        out.result(full if args["--full"] else identity.identifier, data=data)
    elif args["list"]:
        default = identities.default_name()
        rows = [[n, identities.load(n).identifier, "yes" if n == default else ""] for n in identities.names()]
        out.result(table(["Name", "Identifier", "Default"], rows) if rows else "No identities",
                   data=[{"name": r[0], "identifier": r[1], "default": bool(r[2])} for r in rows])
    elif args["default"]:
        if args["<name>"]:
            identities.set_default(args["<name>"])
        out.result(_name(args))
    elif args["delete"]:
        identities.delete(args["<name>"])
        out.result(f"Deleted identity {args['<name>']}")
