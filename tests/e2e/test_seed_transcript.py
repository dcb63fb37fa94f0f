"""The "Relays and Portals" transcript of the seed, run verbatim through the real CLI."""

import json
import re
import shutil
import subprocess

import pytest


def worker_hex_of_connection(table: str, socket_address: str) -> str:
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 5 and cells[2] == "Remote connection" and cells[3] == socket_address:
            match = re.fullmatch(r"0#([0-9a-f]{32})", cells[4])
            assert match, f"bad worker address {cells[4]!r}"
            return match.group(1)
    raise AssertionError(f"no remote connection to {socket_address} in:\n{table}")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (make test installs it)")
def test_relays_and_portals_transcript(ockam, http_server):
    assert ockam("node", "create", "n2", "--tcp-listener-address=127.0.0.1:7000") == "/node/n2"
    assert ockam("node", "create", "n3") == "/node/n3"
    assert ockam("forwarder", "create", "n3", "--at", "/node/n2", "--to", "/node/n3") == "/service/forward_to_n3"
    ockam("node", "create", "n1")
    ockam("tcp-connection", "create", "--from", "n1", "--to", "127.0.0.1:7000")
    table = ockam("tcp-connection", "list", "--node", "n1")
    assert table.splitlines()[0].startswith("+---")
    assert [c.strip() for c in table.splitlines()[1].strip("|").split("|")] == [
        "Transport ID", "Transport Type", "Mode", "Socket address", "Worker address"]
    worker = worker_hex_of_connection(table, "127.0.0.1:7000")

    reply = ockam("message", "send", "hello", "--from", "/node/n1",
                  "--to", f"/service/{worker}/service/forward_to_n3/service/uppercase")
    assert reply == "HELLO"

    http_server(9000)
    assert ockam("tcp-outlet", "create", "--at", "/node/n3", "--from", "/service/outlet",
                 "--to", "127.0.0.1:9000") == "/service/outlet"
    ockam("tcp-inlet", "create", "--at", "/node/n1", "--from", "127.0.0.1:6000",
          "--to", f"/service/{worker}/service/forward_to_n3/service/outlet")
    curl = subprocess.run(["curl", "--silent", "--show-error", "--max-time", "20", "--head", "127.0.0.1:6000"],
                          capture_output=True, text=True, timeout=30)
    assert curl.returncode == 0, curl.stderr
    assert curl.stdout.splitlines()[0].strip() == "HTTP/1.0 200 OK"

    pids = ockam.node_pids()
    assert len(pids) == 3
    ockam("node", "delete", "--all")
    assert json.loads(ockam("node", "list", "--output", "json")) == []
    for pid in pids:
        assert not _alive(pid), f"node process {pid} survived 'node delete --all'"


def _alive(pid: int) -> bool:
    from appliance.host.process import alive

    return alive(pid)
