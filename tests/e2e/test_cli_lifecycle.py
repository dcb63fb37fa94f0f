"""Create, list and delete every kind of thing through the real CLI, in plain and JSON output."""

import json
import sys

import pytest

from tests.helpers import free_port


def as_json(ockam, *args):
    return json.loads(ockam(*args, "--output", "json"))


def test_listeners_connections_relays_inlets_outlets(ockam):
    ockam("node", "create", "n1")
    ockam("node", "create", "n2", "--tcp-listener-address=127.0.0.1:0")  # a relay
    assert ockam("node", "default") == "n1"

    port = free_port()
    assert ockam("tcp-listener", "create", f"127.0.0.1:{port}", "--at", "n2") == f"127.0.0.1:{port}"
    listener = next(l for l in as_json(ockam, "tcp-listener", "list", "--node", "n2")
                    if l["socket_address"] == f"127.0.0.1:{port}")
    worker = ockam("tcp-connection", "create", "--from", "n1", "--to", f"127.0.0.1:{port}")
    assert worker.startswith("0#") and len(worker) == 34
    assert ockam("message", "send", "hi", "--from", "n1", "--to", f"/service/{worker[2:]}/service/echo") == "hi"
    connection = next(c for c in as_json(ockam, "tcp-connection", "list") if c["worker_address"] == worker)
    ockam("tcp-connection", "delete", connection["id"], "--node", "n1")
    assert worker not in ockam("tcp-connection", "list", "--node", "n1")
    ockam("tcp-listener", "delete", listener["id"], "--node", "n2")
    assert ockam.run("tcp-connection", "create", "--from", "n1", "--to", f"127.0.0.1:{port}",
                     check=False).returncode == 1

    assert ockam("relay", "create", "r1", "--at", "/node/n2", "--to", "n1") == "/service/forward_to_r1"
    assert [r["name"] for r in as_json(ockam, "relay", "list", "--to", "n1")] == ["forward_to_r1"]
    assert [r["direction"] for r in as_json(ockam, "relay", "list", "--to", "n2")] == ["incoming"]
    ockam("relay", "delete", "r1", "--to", "n1")
    assert as_json(ockam, "relay", "list", "--to", "n1") == []

    ockam("tcp-outlet", "create", "--at", "n2", "--from", "/service/web", "--to", "127.0.0.1:9", "--alias", "web")
    inlet_port = free_port()
    ockam("tcp-inlet", "create", "--at", "n1", "--from", f"127.0.0.1:{inlet_port}", "--to", "/node/n2/service/web",
          "--alias", "in1")
    assert [o["alias"] for o in as_json(ockam, "tcp-outlet", "list", "--at", "n2")] == ["web"]
    assert as_json(ockam, "tcp-inlet", "list", "--at", "n1")[0]["bind_address"] == f"127.0.0.1:{inlet_port}"
    assert "in1" in ockam("tcp-inlet", "list", "--at", "n1")
    ockam("tcp-inlet", "delete", "in1", "--at", "n1")
    ockam("tcp-outlet", "delete", "web", "--at", "n2")
    assert as_json(ockam, "tcp-inlet", "list", "--at", "n1") == []
    assert ockam.run("tcp-outlet", "delete", "web", "--at", "n2", check=False).returncode == 1

    listener_address = ockam("secure-channel-listener", "create", "strict", "--at", "n2")
    assert listener_address == "/service/strict"
    assert {l["address"] for l in as_json(ockam, "secure-channel-listener", "list", "--at", "n2")} == {
        "/service/api", "/service/strict"}
    channel = ockam("secure-channel", "create", "--from", "n1", "--to", "/node/n2/service/strict")
    assert as_json(ockam, "secure-channel", "show", channel, "--at", "n1")["role"] == "initiator"
    ockam("secure-channel", "delete", channel, "--at", "n1")
    assert as_json(ockam, "secure-channel", "list", "--at", "n1") == []
    ockam("secure-channel-listener", "delete", "strict", "--at", "n2")


def test_node_lifecycle(ockam):
    ockam("node", "create", "n1")
    ockam("node", "create", "n2")
    ockam("node", "default", "n2")
    nodes = {n["name"]: n for n in as_json(ockam, "node", "list")}
    assert nodes["n2"]["default"] and nodes["n1"]["status"] == "UP"
    ockam("node", "stop", "n1")
    assert {n["name"]: n["status"] for n in as_json(ockam, "node", "list")}["n1"] == "DOWN"
    assert "Status: DOWN" in ockam("node", "show", "n1")
    ockam("node", "start", "n1")
    assert as_json(ockam, "node", "show", "n1")["status"] == "UP"
    assert ockam("node", "logs", "n1").endswith("nodes/n1/node.log")
    ockam("node", "delete", "n2")
    assert ockam("node", "default") == "n1"
    assert ockam("-q", "node", "delete", "n1") == ""
    assert ockam("node", "list") == "No nodes"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="python -P is 3.11+; below it the working directory "
                    "stays first on a node's module path")
def test_a_node_started_from_a_folder_holding_an_appliance_package_runs_ours(ockam, tmp_path):
    """`python -m appliance` would import the working directory's `appliance` first."""
    planted = tmp_path / "appliance"
    planted.mkdir()
    marker = tmp_path / "planted-code-ran"
    (planted / "__init__.py").write_text("")
    (planted / "__main__.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise SystemExit(3)\n")
    ockam.run("node", "create", "n1", cwd=tmp_path)
    assert ockam.run("message", "send", "hi", "--to", "/service/echo", cwd=tmp_path).stdout.strip() == "hi"
    assert not marker.exists()
