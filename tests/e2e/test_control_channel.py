"""The control channel without Unix sockets (issue 14): loopback TCP and a token in a file
only the node's user can read. Forced here with OCKAM_CONTROL=tcp; CI also runs the whole e2e
suite over it (make test-tcp-control), as Windows would."""

import hashlib
import hmac
import json
import os
import signal
import socket
import stat
from pathlib import Path

import pytest

from appliance.host.control import CONTROL_ENV
from tests.e2e.conftest import Impostor


@pytest.fixture
def tcp_node(ockam):
    ockam.env[CONTROL_ENV] = "tcp"
    ockam("node", "create", "n1")
    return ockam


def exchange(port: int, first: bytes, *rest: bytes) -> bytes:
    """Send `first`, read the answer line; then send the `rest` and read until the node closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        reader = sock.makefile("rb")
        sock.sendall(first + b"\n")
        said = reader.readline()
        if said and rest:
            try:
                sock.sendall(b"".join(line + b"\n" for line in rest))
            except OSError:
                return said
            said += reader.read()
    return said


def test_the_token_file_is_the_users_only(tcp_node):
    directory = Path(tcp_node.home, "nodes", "n1")
    tokens = directory / "control.json"
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700 and stat.S_IMODE(os.stat(tokens).st_mode) == 0o600
    assert not (directory / "api.sock").exists()
    data = json.loads(tokens.read_text())
    assert len(bytes.fromhex(data["token"])) == 32
    assert tcp_node("message", "send", "over tcp", "--from", "n1", "--to", "/service/uppercase") == "OVER TCP"


def test_the_node_proves_its_token_and_refuses_a_client_without_it(tcp_node):
    data = json.loads(Path(tcp_node.home, "nodes", "n1", "control.json").read_text())
    port, token, nonce = data["port"], data["token"], "ab" * 16
    proof = hmac.new(bytes.fromhex(token), b"ockam control " + nonce.encode(), hashlib.sha256).hexdigest()
    request = json.dumps({"op": "node.stop"}).encode()
    assert exchange(port, request) == b""  # not a nonce: closed after one line, nothing read further
    assert exchange(port, nonce.encode(), b"00" * 32, request) == proof.encode() + b"\n"  # wrong token: closed
    assert exchange(port, nonce.encode(), token.encode()[:-2], request) == proof.encode() + b"\n"
    assert "UP" in tcp_node("node", "list")  # none of those stopped it
    answer = exchange(port, nonce.encode(), token.encode(), json.dumps({"op": "node.show"}).encode())
    assert json.loads(answer.split(b"\n")[1])["result"]["name"] == "n1"


def test_a_stale_port_file_gets_no_token_and_no_request(tcp_node):
    """A node killed with -9 leaves control.json; someone else may listen on that port later
    (here at once: the file is pointed at the impostor, as a reused port would be)."""
    tokens = Path(tcp_node.home, "nodes", "n1", "control.json")
    data = json.loads(tokens.read_text())
    os.kill(json.loads(tcp_node("node", "show", "n1", "--output", "json"))["pid"], signal.SIGKILL)
    impostor = Impostor()
    tokens.write_text(json.dumps({**data, "port": impostor.port}))
    try:
        assert "DOWN" in tcp_node("node", "list")
        proc = tcp_node.run("relay", "list", "--at", "n1", check=False)
        assert proc.returncode == 1 and "node 'n1' is not running: something else answers" in proc.stderr
        assert impostor.heard_only_nonces(data["token"]), impostor.heard
        tcp_node("node", "start", "n1")
        assert "UP" in tcp_node("node", "list")
    finally:
        impostor.close()


def test_the_node_serves_one_channel_and_the_cli_finds_it(tcp_node):
    """Restarted over the Unix socket, the node removes its token file, and the reverse."""
    tcp_node("node", "stop", "n1")
    del tcp_node.env[CONTROL_ENV]
    tcp_node("node", "start", "n1")
    directory = Path(tcp_node.home, "nodes", "n1")
    assert (directory / "api.sock").exists() and not (directory / "control.json").exists()
    assert "UP" in tcp_node("node", "list")
