"""The control channel without Unix sockets (issue 14): loopback TCP and a token in a file
only the node's user can read. Forced here with OCKAM_CONTROL=tcp; CI also runs the whole e2e
suite over it (make test-tcp-control), as Windows would."""

import json
import os
import socket
import stat
from pathlib import Path

import pytest

from appliance.host.control import CONTROL_ENV


@pytest.fixture
def tcp_node(ockam):
    ockam.env[CONTROL_ENV] = "tcp"
    ockam("node", "create", "n1")
    return ockam


def ask(port: int, request: dict) -> dict:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(json.dumps(request).encode() + b"\n")
        answer = sock.makefile("rb").readline()
        assert sock.recv(1) == b""  # one line, then closed
    return json.loads(answer)


def test_the_token_file_is_the_users_only(tcp_node):
    directory = Path(tcp_node.home, "nodes", "n1")
    tokens = directory / "control.json"
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700 and stat.S_IMODE(os.stat(tokens).st_mode) == 0o600
    assert not (directory / "api.sock").exists()
    data = json.loads(tokens.read_text())
    assert len(bytes.fromhex(data["token"])) == 32
    assert tcp_node("message", "send", "over tcp", "--from", "n1", "--to", "/service/uppercase") == "OVER TCP"


def test_a_wrong_or_missing_token_is_refused(tcp_node):
    data = json.loads(Path(tcp_node.home, "nodes", "n1", "control.json").read_text())
    refused = {"ok": False, "error": "refused: not the node's control token", "exit_code": 1}
    assert ask(data["port"], {"op": "node.stop"}) == refused
    assert ask(data["port"], {"op": "node.stop", "token": "00" * 32}) == refused
    assert ask(data["port"], {"op": "node.stop", "token": data["token"][:-2]}) == refused
    assert ask(data["port"], {"op": "node.show", "token": data["token"]})["result"]["name"] == "n1"
    assert "UP" in tcp_node("node", "list")  # none of the refused ones stopped it


def test_the_node_serves_one_channel_and_the_cli_finds_it(tcp_node):
    """Restarted over the Unix socket, the node removes its token file, and the reverse."""
    tcp_node("node", "stop", "n1")
    del tcp_node.env[CONTROL_ENV]
    tcp_node("node", "start", "n1")
    directory = Path(tcp_node.home, "nodes", "n1")
    assert (directory / "api.sock").exists() and not (directory / "control.json").exists()
    assert "UP" in tcp_node("node", "list")
