"""Helpers shared by the command modules: naming nodes and reading routes."""

from __future__ import annotations

import sys

from appliance.cli.errors import CliError
from appliance.host import state


def node_arg(value: str | None) -> str:
    """`n1`, `/node/n1` or nothing (the default node) -> a node name that exists."""
    if value is None:
        name = state.default_node()
        if name is None:
            raise CliError("no node given and there is no default node (see 'ockam node create')")
        return name
    name = value[len("/node/"):] if value.startswith("/node/") else value
    if "/" in name:
        raise CliError(f"expected a node name or /node/NAME, got {value!r}", code=2)
    state.check_name(name)
    if not state.exists(name):
        raise CliError(f"node {name!r} does not exist (see 'ockam node list')")
    return name


def route_arg(value: str) -> str:
    """A route argument; a leading `-` is replaced by the first line of stdin (for pipes)."""
    if value.startswith("-") and (len(value) == 1 or value[1] == "/"):
        line = sys.stdin.readline().strip()
        if not line:
            raise CliError("route '-' reads the first line of stdin, but stdin was empty")
        return line + value[1:]
    return value
