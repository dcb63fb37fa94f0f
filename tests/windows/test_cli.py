"""The CLI's life cycle of background nodes under Wine: detached spawn, the TCP control channel
with its token, stop, start, delete, logs, and a stale control.json."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import Impostor
from tests.helpers import wait_until


def test_background_nodes_stop_start_log_and_delete(windows):
    assert windows("node", "create", "n1") == "/node/n1"
    info = json.loads(windows("node", "show", "n1", "--output", "json"))
    assert info["status"] == "UP"
    control = json.loads(Path(windows.home, "nodes", "n1", "control.json").read_text())
    assert set(control) >= {"port", "token"} and len(bytes.fromhex(control["token"])) == 32
    assert not Path(windows.home, "nodes", "n1", "api.sock").exists()  # no Unix sockets on Windows
    assert windows("message", "send", "over tcp", "--from", "n1", "--to", "/service/uppercase") == "OVER TCP"

    assert windows("node", "stop", "n1") == "Stopped node n1"
    assert json.loads(windows("node", "show", "n1", "--output", "json"))["status"] == "DOWN"
    wait_until(lambda: not windows.node_processes(), what="the stopped node's process to end")
    assert windows("node", "start", "n1") == "/node/n1"
    assert windows("message", "send", "again", "--from", "n1", "--to", "/service/uppercase") == "AGAIN"

    log = windows("node", "logs", "n1")
    assert log.endswith(r"\nodes\n1\node.log")
    assert Path(windows.home, "nodes", "n1", "node.log").stat().st_size > 0

    assert windows("node", "delete", "n1") == "Deleted node n1"
    assert windows("node", "list") == "No nodes"
    wait_until(lambda: not windows.node_processes(), what="the deleted node's process to end")


def test_a_stale_control_file_gets_no_token_and_no_request(windows):
    """A node killed outright leaves control.json; another process may listen on its port later."""
    windows("node", "create", "n1")
    tokens = Path(windows.home, "nodes", "n1", "control.json")
    data = json.loads(tokens.read_text())
    pid = json.loads(windows("node", "show", "n1", "--output", "json"))["pid"]
    windows.wine.run("taskkill", "/F", "/PID", str(pid), timeout=30)
    wait_until(lambda: json.loads(windows("node", "show", "n1", "--output", "json"))["status"] == "DOWN",
               timeout=20, what="the killed node to be DOWN")
    impostor = Impostor()
    tokens.write_text(json.dumps({**data, "port": impostor.port}))
    try:
        refused = windows.run("relay", "list", "--at", "n1", check=False)
        assert refused.returncode == 1
        assert "node 'n1' is not running: something else answers" in refused.stderr
        assert impostor.heard_only_nonces(data["token"]), impostor.heard
        assert windows("node", "start", "n1") == "/node/n1"
        assert json.loads(windows("node", "show", "n1", "--output", "json"))["status"] == "UP"
    finally:
        impostor.close()
