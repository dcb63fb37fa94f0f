"""The seed's transcripts with every command through ockam.exe under Wine, and the portal used
by curl from Linux; then Windows and Linux nodes on either side of a relay."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading

import pytest

from appliance import __version__
from tests.e2e.test_seed_transcript import worker_hex_of_connection
from tests.helpers import free_port, wait_until
from tests.windows.conftest import EXE

MAX_SIZE = 20 << 20
pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (make test installs it)")


def curl(port: int) -> str:
    result = subprocess.run(["curl", "-sS", "--max-time", "20", f"http://127.0.0.1:{port}/"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def site(http_server, tmp_path):
    """An http.server on Linux whose page carries a random marker: (port, marker)."""
    marker = "PLAINTEXT-MARKER-" + os.urandom(12).hex()
    (tmp_path / "index.html").write_text(f"<html><body>{marker}</body></html>\n")
    port = free_port()
    http_server(port, str(tmp_path))
    return port, marker


def test_one_file_under_20_mb_that_knows_its_version(windows):
    assert os.path.getsize(EXE) <= MAX_SIZE
    assert windows("--version") == f"ockam {__version__} (ockam-appliance)"
    bad = windows.run("node", "show", "ghost", check=False)
    assert bad.returncode == 1 and bad.stderr == "Error: node 'ghost' does not exist (see 'ockam node list')\n"


def test_relays_and_portals_transcript(windows, site):
    target, marker = site
    relay = free_port()
    assert windows("node", "create", "n2", f"--tcp-listener-address=127.0.0.1:{relay}") == "/node/n2"
    assert windows("node", "create", "n3") == "/node/n3"
    assert windows("forwarder", "create", "n3", "--at", "/node/n2", "--to", "/node/n3") == "/service/forward_to_n3"
    windows("node", "create", "n1")
    windows("tcp-connection", "create", "--from", "n1", "--to", f"127.0.0.1:{relay}")
    worker = worker_hex_of_connection(windows("tcp-connection", "list", "--node", "n1"), f"127.0.0.1:{relay}")
    assert windows("message", "send", "hello", "--from", "/node/n1",
                   "--to", f"/service/{worker}/service/forward_to_n3/service/uppercase") == "HELLO"

    assert windows("tcp-outlet", "create", "--at", "/node/n3", "--from", "/service/outlet",
                   "--to", f"127.0.0.1:{target}") == "/service/outlet"
    inlet = free_port()
    windows("tcp-inlet", "create", "--at", "/node/n1", "--from", f"127.0.0.1:{inlet}",
            "--to", f"/service/{worker}/service/forward_to_n3/service/outlet")
    assert marker in curl(inlet)

    nodes = json.loads(windows("node", "list", "--output", "json"))
    assert sorted(node["name"] for node in nodes) == ["n1", "n2", "n3"]
    assert all(node["status"] == "UP" for node in nodes)
    assert len(windows.node_processes()) >= 3  # each node a process of its own (and its bootloader)
    windows("node", "delete", "--all")
    assert json.loads(windows("node", "list", "--output", "json")) == []
    wait_until(lambda: not windows.node_processes(), what="every node process to end")


def test_a_secure_channel_through_a_windows_relay_carries_no_plaintext(windows, tap, site):
    target, marker = site
    relay = free_port()
    windows("node", "create", "n2", f"--tcp-listener-address=127.0.0.1:{relay}")
    recorder = tap(relay)  # n1 and n3 reach the relay only through a Linux tap that records every byte
    windows("node", "create", "n3")
    windows("forwarder", "create", "n3", "--at", f"/ip4/127.0.0.1/tcp/{recorder.port}", "--to", "/node/n3")
    windows("node", "create", "n1")
    windows("tcp-outlet", "create", "--at", "/node/n3", "--from", "/service/outlet", "--to", f"127.0.0.1:{target}")
    inlet = free_port()
    windows("tcp-inlet", "create", "--at", "/node/n1", "--from", f"127.0.0.1:{inlet}",
            "--to", f"/ip4/127.0.0.1/tcp/{recorder.port}/service/forward_to_n3/secure/api/service/outlet")
    assert marker in curl(inlet)
    crossed = bytes(recorder.captured)
    assert len(crossed) > 1000 and marker.encode() not in crossed and b"GET / HTTP" not in crossed


@pytest.mark.parametrize("relay_on", ["linux", "windows"],
                         ids=["windows-edge-behind-a-linux-relay", "linux-edge-behind-a-windows-relay"])
def test_mixed_relay_and_edge(windows, ockam, site, relay_on):
    """The relay on one system, the edge (outlet) and the client (inlet) on the other."""
    target, marker = site
    relay_side, other = (ockam, windows) if relay_on == "linux" else (windows, ockam)
    relay = free_port()
    relay_side("node", "create", "relay", f"--tcp-listener-address=127.0.0.1:{relay}")
    other("node", "create", "edge")
    other("tcp-outlet", "create", "--at", "edge", "--from", "/service/outlet", "--to", f"127.0.0.1:{target}")
    other("relay", "create", "edge", "--at", f"/ip4/127.0.0.1/tcp/{relay}", "--to", "edge")
    relay_side("node", "create", "client")
    inlet = free_port()
    relay_side("tcp-inlet", "create", "--at", "client", "--from", f"127.0.0.1:{inlet}",
               "--to", f"/ip4/127.0.0.1/tcp/{relay}/service/forward_to_edge/secure/api/service/outlet")
    assert marker in curl(inlet)


def test_a_udp_portal_through_windows_nodes_reaches_a_linux_service(windows):
    service = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    service.bind(("127.0.0.1", 0))
    service.settimeout(0.5)

    def echo():
        while True:
            try:
                data, address = service.recvfrom(65_535)
            except socket.timeout:
                continue
            except OSError:
                return
            service.sendto(b"echo:" + data, address)

    threading.Thread(target=echo, daemon=True).start()
    relay, inlet = free_port(), free_port()
    windows("node", "create", "u2", f"--tcp-listener-address=127.0.0.1:{relay}")
    windows("node", "create", "u3")
    windows("relay", "create", "u3", "--at", "/node/u2", "--to", "u3")
    windows("udp-outlet", "create", "--at", "u3", "--from", "/service/udp", "--to",
            f"127.0.0.1:{service.getsockname()[1]}")
    windows("node", "create", "u1")
    windows("udp-inlet", "create", "--at", "u1", "--from", f"127.0.0.1:{inlet}", "--alias", "u",
            "--to", "/node/u2/service/forward_to_u3/secure/api/service/udp")
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(1.0)
    big = os.urandom(30_000)

    def answered(data: bytes) -> bool:
        client.sendto(data, ("127.0.0.1", inlet))
        try:
            return client.recv(65_535) == b"echo:" + data
        except socket.timeout:
            return False

    wait_until(lambda: answered(b"hello from linux"), timeout=30, what="the first answer through Windows nodes")
    wait_until(lambda: answered(big), timeout=10, what="a 30 000-byte datagram")
    shown = json.loads(windows("udp-inlet", "show", "u", "--at", "u1", "--output", "json"))
    assert shown["flows"] == 1 and shown["datagrams_out"] >= 2
    client.close()
    service.close()
