"""Operating a node from afar (issue 13), with the real CLI: a real Prometheus server scrapes
a node's /metrics, /ready follows a relay that goes away and comes back, and the states and
errors an operator reads in `relay list`, `tcp-inlet list|show` and on stderr.

    c: inlet "web" --> r (relay) <-- e (relay `e`, outlet) --> echo server
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.helpers import free_port, wait_until

pytestmark = pytest.mark.timeout(120)

ROUTE = "/node/r/service/forward_to_e/service/outlet"


def http_get(address: str, path: str) -> tuple:
    """(status, body) of GET http://address/path."""
    try:
        with urllib.request.urlopen(f"http://{address}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def echo_through(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        got = bytearray()
        while chunk := sock.recv(65536):
            got += chunk
    return bytes(got)


@pytest.fixture
def portal(ockam, echo_target):
    """r, e and c as drawn above, c and e with metrics; returns a dict of their ports."""
    ports = {"relay": free_port(), "inlet": free_port(), "c_metrics": free_port(), "e_metrics": free_port()}
    ockam("node", "create", "r", "--tcp-listener-address", f"127.0.0.1:{ports['relay']}")
    ockam("node", "create", "e", "--metrics-address", str(ports["e_metrics"]))
    ockam("relay", "create", "e", "--at", "/node/r", "--to", "e")
    ockam("tcp-outlet", "create", "--at", "e", "--to", f"127.0.0.1:{echo_target}")
    ockam("node", "create", "c", "--metrics-address", f"127.0.0.1:{ports['c_metrics']}")
    ockam("tcp-inlet", "create", "--at", "c", "--from", f"127.0.0.1:{ports['inlet']}", "--to", ROUTE,
          "--alias", "web")
    return ports


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus is not installed (make test installs it)")
def test_prometheus_scrapes_the_bytes_that_crossed_an_inlet(portal, tmp_path):
    payload = os.urandom(300_000)
    assert echo_through(portal["inlet"], payload) == payload
    status, exposition = http_get(f"127.0.0.1:{portal['c_metrics']}", "/metrics")
    assert status == 200
    lint = subprocess.run(["promtool", "check", "metrics"], input=exposition, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    web = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: ockam\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{portal['c_metrics']}']\n")
    server = subprocess.Popen(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                               f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{web}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    query = urllib.parse.quote('ockam_portal_received_bytes_total{kind="inlet",name="web"}')
    answer = {}

    def scraped() -> bool:
        try:
            status, body = http_get(f"127.0.0.1:{web}", f"/api/v1/query?query={query}")
        except OSError:
            return False  # not listening yet
        answer["result"] = json.loads(body)["data"]["result"] if status == 200 else body
        return bool(answer["result"]) and answer["result"][0]["value"][1] == str(len(payload))

    try:
        wait_until(scraped, timeout=60, interval=0.5, what=f"Prometheus to have scraped the inlet: {answer}")
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_ready_follows_the_relay(ockam, portal):
    e_metrics = f"127.0.0.1:{portal['e_metrics']}"
    wait_until(lambda: http_get(e_metrics, "/ready")[0] == 200, timeout=10, what="e to be ready")
    assert http_get(e_metrics, "/health") == (200, "ok\n")
    pid = json.loads(ockam("node", "show", "r", "--output", "json"))["pid"]
    os.kill(pid, signal.SIGKILL)
    went = time.monotonic()
    wait_until(lambda: http_get(e_metrics, "/ready")[0] == 503, timeout=15, what="/ready to say 503")
    assert time.monotonic() - went < 15  # within the default link liveness window
    body = json.loads(http_get(e_metrics, "/ready")[1])
    assert body["ready"] is False and [item["relay"] for item in body["not_ready"]] == ["forward_to_e"]
    assert body["not_ready"][0]["state"] in ("connecting", "down") and body["not_ready"][0]["last_error"]

    ockam("node", "start", "r")
    wait_until(lambda: http_get(e_metrics, "/ready")[0] == 200, timeout=10, what="/ready to say 200 again")
    relays = json.loads(ockam("relay", "list", "--at", "e", "--output", "json"))
    assert relays[0]["state"] == "up" and relays[0]["reconnects"] == 1
    # the last error is kept after recovery: the link lost, or r refusing while it was down
    assert relays[0]["last_error"] in ("the link to /node/r was lost",
                                       f"cannot connect to 127.0.0.1:{portal['relay']}: Connection refused")


def test_an_inlet_to_a_relay_that_does_not_exist(ockam, portal):
    """Issue 13: it was created without a word; every client hung 10 s, then was reset."""
    port = free_port()
    proc = ockam.run("tcp-inlet", "create", "--at", "c", "--from", f"127.0.0.1:{port}",
                     "--to", "/node/r/service/forward_to_typo/service/outlet", "--alias", "typo")
    assert proc.returncode == 0
    assert proc.stderr.strip() == (
        "Warning: inlet typo: the outlet at /node/r/service/forward_to_typo/service/outlet did not answer within "
        "2 s (the route ends before the outlet (no such relay or outlet on the way, or the outlet refuses us)); "
        "the inlet is created and keeps trying")
    started = time.monotonic()
    with pytest.raises(ConnectionResetError):
        echo_through(port, b"hello")
    assert time.monotonic() - started < 2
    shown = json.loads(ockam("tcp-inlet", "show", "typo", "--at", "c", "--output", "json"))
    assert shown["state"] == "down" and "the route ends before the outlet" in shown["last_error"]
    listed = ockam("tcp-inlet", "list", "--at", "c")
    assert "| typo " in listed and "| down " in listed and "| web " in listed and "| up " in listed
    c_metrics = f"127.0.0.1:{portal['c_metrics']}"
    status, body = http_get(c_metrics, "/ready")
    assert status == 503 and [item.get("inlet") for item in json.loads(body)["not_ready"]] == ["typo"]
    _, exposition = http_get(c_metrics, "/metrics")
    assert 'ockam_inlet_state{name="typo",route="/node/r/service/forward_to_typo/service/outlet",state="down"} 1' \
        in exposition.splitlines()
    assert 'ockam_portal_connect_failures_total{kind="inlet",name="typo"} 1' in exposition.splitlines()
    log = open(os.path.join(ockam.home, "nodes", "c", "node.log")).read()
    assert f"inlet typo (127.0.0.1:{port}, route /node/r/service/forward_to_typo/service/outlet): refusing " \
           "clients: the route ends before the outlet" in log


def test_a_busy_metrics_port_is_one_line_and_no_node(ockam):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = ockam.run("node", "create", "m", "--metrics-address", f"127.0.0.1:{port}", check=False)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}: " in proc.stderr
    assert "m" not in ockam("node", "list")


def test_node_run_takes_metrics_address_from_the_topology(ockam):
    port = free_port()
    directory = tempfile.mkdtemp(dir=ockam.home)
    path = os.path.join(directory, "m.toml")
    with open(path, "w") as f:
        f.write(f'[node]\nname = "m"\nmetrics_address = "{port}"\n')
    proc = subprocess.Popen(ockam.command("node", "run", path), env=ockam.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _status(f"127.0.0.1:{port}", "/health") == 200, timeout=15, what="m's /health")
        assert http_get(f"127.0.0.1:{port}", "/ready") == (200, '{"ready": true, "not_ready": [], "degraded": []}\n')
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def _status(address: str, path: str):
    try:
        return http_get(address, path)[0]
    except OSError:
        return None
