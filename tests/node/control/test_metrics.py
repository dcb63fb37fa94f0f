"""/metrics, /health and /ready of an in-process node: exact series after known traffic."""

import json
import shutil
import subprocess

import gevent
import pytest
from gevent import socket

from appliance.node.control import metrics
from appliance.node.errors import RouteError
from appliance.node.control.status_server import StatusServer
from appliance.observe.exposition import render
from tests.node.conftest import connect, recv_exactly

ROUTE = "/node/relay/service/forward_to_edge/service/outlet"


def http(address: str, request: bytes) -> bytes:
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(request)
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer


@pytest.fixture
def nodes(make_node, echo_server):
    relay, edge, client = make_node("relay"), make_node("edge", listen=False), make_node("client")
    edge.control.relay_create("edge", "/node/relay")
    edge.control.outlet_create(echo_server, alias="echo")
    client.control.inlet_create("127.0.0.1:0", ROUTE, alias="web")
    return relay, edge, client


def test_the_series_say_what_crossed(nodes):
    _relay, edge, client = nodes
    sock = connect(client.portals.inlets["web"].bind)
    sock.sendall(b"x" * 100_000)
    assert recv_exactly(sock, 100_000) == b"x" * 100_000
    sock.close()
    lines = render(metrics.families(client)).decode().splitlines()
    for line in ('ockam_portal_received_bytes_total{kind="inlet",name="web"} 100000',
                 'ockam_portal_sent_bytes_total{kind="inlet",name="web"} 100000',
                 'ockam_portal_connections_total{kind="inlet",name="web"} 1',
                 f'ockam_inlet_state{{name="web",route="{ROUTE}",state="up"}} 1',
                 'ockam_links_open{direction="outgoing"} 1'):
        assert line in lines
    edge_lines = render(metrics.families(edge)).decode().splitlines()
    for line in ('ockam_portal_received_bytes_total{kind="outlet",name="echo"} 100000',
                 'ockam_relay_state{name="forward_to_edge",at="/node/relay",state="up"} 1',
                 'ockam_relay_registrations_total{name="forward_to_edge",at="/node/relay"} 1',
                 'ockam_relay_reconnects_total{name="forward_to_edge",at="/node/relay"} 0'):
        assert line in edge_lines


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (make test installs it)")
def test_promtool_finds_nothing_to_say(nodes):
    for runtime in nodes:
        text = render(metrics.families(runtime))
        lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
        assert lint.returncode == 0 and lint.stdout + lint.stderr == b"", lint


def test_the_endpoints(nodes):
    _relay, _edge, client = nodes
    server = StatusServer(client, "127.0.0.1:0")
    try:
        assert http(server.address, b"GET /health HTTP/1.0\r\n\r\n").endswith(b"\r\n\r\nok\n")
        ready = http(server.address, b"GET /ready HTTP/1.0\r\n\r\n")
        assert ready.startswith(b"HTTP/1.1 200 ") and ready.endswith(b'{"ready": true, "not_ready": [], "degraded": []}\n')
        client.control.inlet_create("127.0.0.1:0", "/node/relay/service/forward_to_nobody/service/outlet", alias="typo")
        ready = http(server.address, b"GET /ready HTTP/1.0\r\n\r\n")
        assert ready.startswith(b"HTTP/1.1 503 ")
        body = json.loads(ready.split(b"\r\n\r\n", 1)[1])
        assert [(item["inlet"], item["state"]) for item in body["not_ready"]] == [("typo", "down")]
        assert http(server.address, b"POST /metrics HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 405 ")
        assert http(server.address, b"GET /nope HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 404 ")
        assert http(server.address, b"HEAD /metrics HTTP/1.0\r\n\r\n").endswith(b"\r\n\r\n")
    finally:
        server.close()


def test_clients_that_trickle_do_not_keep_it_forever(nodes, monkeypatch):
    """A client sending a byte now and then held a slot for ever (the deadline was per read)."""
    from appliance.node.control import status_server

    monkeypatch.setattr(status_server, "REQUEST_DEADLINE", 0.5)
    server = StatusServer(nodes[2], "127.0.0.1:0")
    host, port = server.address.rsplit(":", 1)

    def trickle():
        sock = socket.create_connection((host, int(port)))
        try:
            for _ in range(100):
                sock.sendall(b"G")
                gevent.sleep(0.1)
        except OSError:
            pass  # closed by the deadline
        finally:
            sock.close()

    slow = [gevent.spawn(trickle) for _ in range(status_server.MAX_REQUESTS + 4)]
    try:
        gevent.sleep(0.2)
        started = gevent.get_hub().loop.now()
        assert http(server.address, b"GET /health HTTP/1.0\r\n\r\n").endswith(b"ok\n")
        assert gevent.get_hub().loop.now() - started < 3
    finally:
        gevent.killall(slow)
        server.close()


def test_what_strangers_send_wrong_is_logged_once(nodes, caplog):
    server = StatusServer(nodes[2], "127.0.0.1:0")
    try:
        for _ in range(30):
            http(server.address, b"\x16\x03\x01 junk\r\n\r\n")
    finally:
        server.close()
    lines = [r for r in caplog.records if r.name == "appliance.node.control.status_server"]
    assert len(lines) == 1 and lines[0].getMessage().startswith("status endpoint: ")


def test_a_busy_port_is_one_line(nodes):
    with pytest.raises(RouteError) as caught:
        StatusServer(nodes[2], nodes[2].portals.inlets["web"].bind)
    assert str(caught.value).startswith(f"cannot serve metrics on {nodes[2].portals.inlets['web'].bind}: ")


def test_sampled_values_are_computed_again_only_when_due():
    now, calls = [0.0], []
    sampled = metrics.Sampled(lambda: calls.append(1) or len(calls), every=60, clock=lambda: now[0])
    assert (sampled(), sampled()) == (1, 1)
    now[0] = 61.0
    assert sampled() == 2
