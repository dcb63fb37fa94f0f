"""The seed's portal with the inlet route through /secure/api: the relay sees only ciphertext."""

import os
import shutil
import socket
import subprocess
import tempfile

import pytest

from tests.helpers import free_port

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


@pytest.fixture
def site(http_server):
    """An http.server whose page carries a random marker; returns (port, marker)."""
    directory = tempfile.mkdtemp(prefix="ockam-site-")
    marker = "PLAINTEXT-MARKER-" + os.urandom(12).hex()
    with open(os.path.join(directory, "index.html"), "w") as f:
        f.write(f"<html><body>{marker}</body></html>\n")
    port = free_port()
    http_server(port, directory)
    yield port, marker
    shutil.rmtree(directory, ignore_errors=True)


def curl(port: int) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "20", f"http://127.0.0.1:{port}/"],
                          capture_output=True, text=True, timeout=30)


def relay_through_tap(ockam, tap):
    """n2 is the relay node; n1 and n3 reach it only through a tap that records every byte."""
    relay_port = free_port()
    ockam("node", "create", "n2", f"--tcp-listener-address=127.0.0.1:{relay_port}")
    recorder = tap(relay_port)
    ockam("node", "create", "n3")
    ockam("forwarder", "create", "n3", "--at", f"/ip4/127.0.0.1/tcp/{recorder.port}", "--to", "/node/n3")
    ockam("node", "create", "n1")
    return recorder


@pytest.mark.parametrize("secure", [True, False], ids=["secure", "plain-control"])
def test_relay_sees_no_plaintext_through_a_secure_channel(ockam, tap, site, secure):
    target, marker = site
    recorder = relay_through_tap(ockam, tap)
    ockam("tcp-outlet", "create", "--at", "/node/n3", "--from", "/service/outlet", "--to", f"127.0.0.1:{target}")
    inlet = free_port()
    hop = "/secure/api" if secure else ""
    ockam("tcp-inlet", "create", "--at", "/node/n1", "--from", f"127.0.0.1:{inlet}",
          "--to", f"/ip4/127.0.0.1/tcp/{recorder.port}/service/forward_to_n3{hop}/service/outlet")
    result = curl(inlet)
    assert result.returncode == 0 and marker in result.stdout, result
    crossed = bytes(recorder.captured)
    assert len(crossed) > 1000
    if secure:
        assert marker.encode() not in crossed
        assert b"GET / HTTP" not in crossed
    else:  # the control: without /secure the same tap sees everything, so the check above can fail
        assert marker.encode() in crossed


def test_only_authorized_identities_reach_the_outlet(ockam, tap, site):
    target, marker = site
    ockam("identity", "create", "alice")
    ockam("identity", "create", "mallory")
    alice = ockam("identity", "show", "alice")
    recorder = relay_through_tap(ockam, tap)
    ockam("node", "create", "m1", "--identity", "mallory")
    ockam("node", "create", "a1", "--identity", "alice")
    ockam("tcp-outlet", "create", "--at", "n3", "--to", f"127.0.0.1:{target}", "--authorized", alice)
    route = f"/ip4/127.0.0.1/tcp/{recorder.port}/service/forward_to_n3/secure/api/service/outlet"
    good, bad = free_port(), free_port()
    ockam("tcp-inlet", "create", "--at", "a1", "--from", f"127.0.0.1:{good}", "--to", route)
    ockam("tcp-inlet", "create", "--at", "m1", "--from", f"127.0.0.1:{bad}", "--to", route)
    assert marker in curl(good).stdout
    refused = curl(bad)  # the outlet tells m1's inlet it is not there for it: refused at once (7)
    assert refused.returncode in (7, 52, 56) and marker not in refused.stdout, refused


def test_inlet_refuses_an_outlet_node_with_the_wrong_identity(ockam, site):
    target, marker = site
    ockam("node", "create", "n1")  # creates and uses the default identity
    ockam("identity", "create", "other")
    ockam("node", "create", "n3", "--identity", "other")
    n1_id = ockam("node", "show", "n1", "--output", "json").split('"identifier": "')[1].split('"')[0]
    assert n1_id != ockam("identity", "show", "other")
    ockam("tcp-outlet", "create", "--at", "n3", "--to", f"127.0.0.1:{target}")
    port = free_port()
    proc = ockam.run("tcp-inlet", "create", "--at", "n1", "--from", f"127.0.0.1:{port}", "--alias", "x",
                     "--to", "/node/n3/secure/api/service/outlet", "--authorized", n1_id, check=False)
    # made, with a warning that says why it does not work; its clients are refused at once
    assert proc.returncode == 0 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("Warning: inlet x: the outlet at /node/n3/secure/api/service/outlet did not "
                                  "answer within 2 s (") and "is not authorized" in proc.stderr
    with pytest.raises(ConnectionResetError):  # at connect, or at the first read
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.recv(10)
