"""`ockam config check FILE`: validate a topology without starting anything."""

from __future__ import annotations

from appliance.cli.output import Output
from appliance.config import topology

USAGE = """
Usage:
  ockam config check <file>

Exits 0 when the file is a valid topology; otherwise prints FILE:LINE: KEY: problem and exits 2.
"""


def usage(_command: str) -> str:
    return USAGE


def run(_command: str, args, out: Output) -> None:
    spec = topology.load(args["<file>"])
    summary = (f"{args['<file>']}: ok (node {spec.name or '(named at creation)'}: "
               f"{len(spec.relays)} relays, {len(spec.outlets)} outlets, {len(spec.inlets)} inlets)")
    out.result(summary, data={"file": args["<file>"], "valid": True})
