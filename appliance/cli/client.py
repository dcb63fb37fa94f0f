"""The CLI's way to a node: one JSON request over its control socket; or, for a command that
needs no running node, the same operation on a short-lived node inside the command."""

from __future__ import annotations

import hmac
import json
import logging
import socket

from appliance.cli.errors import CliError
from appliance.host import control, state
from appliance.wire import control as wire_control

DEFAULT_TIMEOUT = 30.0

log = logging.getLogger(__name__)


def call(node: str, op: str, args: dict | None = None, timeout: float = DEFAULT_TIMEOUT):
    """Run one control operation on a local node and return its result."""
    if not state.exists(node):
        raise CliError(f"node {node!r} does not exist (see 'ockam node list')")
    log.debug("node %s <- %s %s", node, op, json.dumps(args or {}))
    response = raw_call(node, op, args or {}, timeout)
    log.debug("node %s -> %s", node, json.dumps(response))
    if response is None:
        raise CliError(f"node {node!r} is not running (start it with 'ockam node start {node}')")
    if not response.get("ok"):  # the node's error, as if it had happened here
        raise CliError(response.get("error") or "the node returned an error", response.get("exit_code", 1))
    return response.get("result")


def call_in_process(op: str, args: dict, identity_name: str | None = None):
    """Run one control operation on a node that lives as long as this command: the default
    (or named) identity, the projects this host knows (`message send` without --from,
    `project enroll`)."""
    from appliance.host import identities, projects
    from appliance.node.runtime import NodeRuntime

    identity = identities.load(identity_name) if identity_name else identities.load_or_create_default()[1]
    runtime = NodeRuntime("ephemeral", node_lookup=state.listener_of, identity=identity, projects=projects.load_all())
    try:
        return runtime.control.table()[op](**args)
    finally:
        runtime.shutdown()


def raw_call(node: str, op: str, args: dict, timeout: float):
    """The node's response, or None when nothing answers on its control channel."""
    where = control.endpoint(node)
    if where is None:
        return None
    try:
        with socket.socket(socket.AF_UNIX if where.family == "unix" else socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(where.address)
            reader = sock.makefile("rb")
            if where.token is not None:
                _present_token(node, sock, reader, where.token)
            sock.sendall(json.dumps({"op": op, "args": args}).encode() + b"\n")
            data = reader.readline()
    except (FileNotFoundError, ConnectionRefusedError):
        return None
    except socket.timeout:
        raise CliError(f"the node did not answer {op} within {timeout:g} s") from None
    except OSError as exc:
        raise CliError(f"cannot reach the node: {exc.strerror or exc}") from None
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        raise CliError("the node sent an unreadable response") from None


def _present_token(node: str, sock, reader, token: str) -> None:
    """wire/control.py: the node proves it holds the token before we send it anything."""
    nonce = wire_control.nonce()
    sock.sendall(nonce.encode() + b"\n")
    answer = reader.readline(wire_control.MAX_LINE).strip().decode("ascii", "replace")
    if not hmac.compare_digest(answer, wire_control.proof(token, nonce)):
        raise CliError(f"node {node!r} is not running: something else answers on the port its control.json "
                       "names (left behind by a node that did not stop cleanly)")
    sock.sendall(token.encode() + b"\n")


def is_up(node: str) -> bool:
    try:
        response = raw_call(node, "node.show", {}, 2.0)
    except (CliError, state.StateError):
        return False
    return bool(response and response.get("ok"))
