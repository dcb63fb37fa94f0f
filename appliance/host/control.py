"""Where a node's control API is, for the node that offers it and the CLI that calls it.

A Unix socket (`api.sock` in the node's 0700 state directory) where the platform has Unix
sockets. Else (CPython on Windows), or with OCKAM_CONTROL=tcp, loopback TCP on a random
port with a random 32-byte token, both written to `control.json` in the state directory,
readable by the node's user only (0600; on Windows an owner-only ACL). The node removes the
file of the other kind when it starts, so the CLI finds the one it serves.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from typing import NamedTuple

from appliance.host import state

CONTROL_ENV = "OCKAM_CONTROL"  # "tcp": the loopback TCP channel even where Unix sockets exist


class Endpoint(NamedTuple):
    family: str  # "unix" or "tcp"
    address: object  # the socket path, or (host, port)
    token: str | None = None


def over_tcp() -> bool:
    return not hasattr(socket, "AF_UNIX") or os.environ.get(CONTROL_ENV) == "tcp"


def token_path(name: str):
    return state.node_dir(name) / "control.json"


def serve(operations: dict, name: str):
    """The node's ControlServer, on the channel this platform (or OCKAM_CONTROL) calls for,
    serving `operations` (request name -> what serves it)."""
    from appliance.node.control.api import ControlServer, bind_loopback, bind_unix

    socket_path, tokens = state.socket_path(name), token_path(name)
    if not over_tcp():
        _remove(tokens)
        return ControlServer(operations, bind_unix(str(socket_path)), str(socket_path))
    _remove(socket_path)
    token = secrets.token_hex(32)
    server = ControlServer(operations, bind_loopback(), str(tokens), token=token)
    state.write_private(tokens, json.dumps({"port": server.port, "token": token}))
    return server


def endpoint(name: str) -> Endpoint | None:
    """How to reach node `name`: its token file if it serves TCP, else its socket; None when
    it offers neither (it is not running)."""
    try:
        data = json.loads(token_path(name).read_text())
        return Endpoint("tcp", ("127.0.0.1", int(data["port"])), str(data["token"]))
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise state.StateError(f"{token_path(name)} is unreadable: {exc}") from None
    if not hasattr(socket, "AF_UNIX"):
        return None
    return Endpoint("unix", str(state.socket_path(name)))


def _remove(path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
