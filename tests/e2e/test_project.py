"""Managed relays: the seed's commands against a self-hosted project node started in the test."""

import json
import shutil
import subprocess

import pytest

from tests.e2e.test_cli_errors import assert_one_line_error
from tests.helpers import free_port, wait_until

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


@pytest.fixture
def project(ockam, tmp_path):
    """A project node `default` on 127.0.0.1; returns the path of project.json."""
    def start(credential_ttl: int = 3600):
        port = free_port()
        config = tmp_path / "project.toml"
        config.write_text(f'[node]\nname = "project"\ntcp_listener_address = "127.0.0.1:{port}"\n\n'
                          f'[project]\nname = "default"\ncredential_ttl = {credential_ttl}\n')
        ockam("node", "create", "--config", str(config))
        info = tmp_path / "project.json"
        info.write_text(ockam("project", "information", "--output", "json"))
        return info
    return start


def test_managed_relays_transcript(ockam, project, http_server):
    info_path = project()
    info = json.loads(info_path.read_text())
    assert info["name"] == "default" and info["access_route"].endswith("/service/api")
    assert set(info) >= {"id", "identity", "access_route", "authority_access_route", "authority_identity"}
    ockam("node", "create", "n1", "--project", str(info_path))
    ockam("node", "create", "n3", "--project", str(info_path))
    assert ockam("forwarder", "create", "n3", "--at", "/project/default", "--to", "/node/n3") == "/service/forward_to_n3"
    assert ockam("message", "send", "hello", "--to", "/project/default/service/forward_to_n3/service/uppercase") == "HELLO"
    target = free_port()
    http_server(target)
    ockam("tcp-outlet", "create", "--at", "/node/n3", "--from", "/service/outlet", "--to", f"127.0.0.1:{target}")
    inlet = free_port()
    ockam("tcp-inlet", "create", "--at", "/node/n1", "--from", f"127.0.0.1:{inlet}",
          "--to", "/project/default/service/forward_to_n3/service/outlet")
    curl = subprocess.run(["curl", "-sS", "--max-time", "20", "--head", f"127.0.0.1:{inlet}"],
                          capture_output=True, text=True, timeout=30)
    assert curl.stdout.splitlines()[0].strip() == "HTTP/1.0 200 OK", curl
    ockam("node", "delete", "--all")


def test_non_members_are_refused_until_they_enroll(ockam, project):
    info_path = project()
    ockam("identity", "create", "outsider")
    ockam("node", "create", "edge", "--identity", "outsider", "--project", str(info_path))
    assert_one_line_error(ockam.run("relay", "create", "edge", "--at", "/project/default", "--to", "edge",
                                    check=False), match="is not a member of project default")
    ticket = ockam("project", "ticket", "--relay", "edge", "--attribute", "role=edge")
    assert ticket.startswith("ockam-ticket:")
    assert "is now a member" in ockam("project", "enroll", ticket, "--identity", "outsider")
    assert_one_line_error(ockam.run("project", "enroll", ticket, "--identity", "outsider", check=False),
                          match="not valid (unknown, used or expired)")
    assert_one_line_error(ockam.run("relay", "create", "other", "--at", "/project/default", "--to", "edge",
                                    check=False), match="may only create relay edge")
    assert ockam("relay", "create", "edge", "--at", "/project/default", "--to", "edge") == "/service/forward_to_edge"


def test_outlet_allow_needs_a_live_credential(ockam, project, http_server):
    info_path = project(credential_ttl=4)
    ockam("identity", "create", "client")
    ockam("node", "create", "n3", "--project", str(info_path))
    ticket = ockam("project", "ticket", "--attribute", "role=client")
    ockam("node", "create", "n1", "--identity", "client", "--project", str(info_path), "--enrollment-ticket", ticket)
    ockam("relay", "create", "n3", "--at", "/project/default", "--to", "n3")
    target = free_port()
    http_server(target)
    ockam("tcp-outlet", "create", "--at", "n3", "--to", f"127.0.0.1:{target}", "--allow", "role=client")
    inlet = free_port()
    ockam("tcp-inlet", "create", "--at", "n1", "--from", f"127.0.0.1:{inlet}",
          "--to", "/project/default/service/forward_to_n3/secure/api/service/outlet")

    def curl():
        return subprocess.run(["curl", "-sS", "--max-time", "20", "--head", f"127.0.0.1:{inlet}"],
                              capture_output=True, text=True, timeout=30)

    assert curl().stdout.startswith("HTTP/1.0 200 OK")
    # n1 refreshes its credential every 2 s and presents it in its channel to n3: past the
    # first one's expiry, its new connections are still let in
    wait_until(lambda: counters(ockam, "n1").get("credentials_refreshed", 0) >= 2, timeout=15,
               what="n1 to refresh its credential twice")
    assert curl().stdout.startswith("HTTP/1.0 200 OK")
    client = json.loads(ockam("identity", "show", "client", "--output", "json"))["identifier"]
    members = json.loads(ockam("project", "member", "list", "--output", "json"))
    assert client in [m["identifier"] for m in members]
    assert ockam("project", "member", "remove", client) == f"{client} is no longer a member"
    # no new credential: within one TTL its credential lapses, n3 closes the channel, and
    # the new channel n1 makes carries no credential the outlet accepts
    wait_until(lambda: curl().returncode in (52, 56), timeout=15, what="the removed member to be refused")
    assert counters(ockam, "n3")["channels_credential_lapsed"] >= 1


def counters(ockam, node: str) -> dict:
    return json.loads(ockam("node", "show", node, "--output", "json"))["counters"]


def test_relays_come_back_after_the_project_node_restarts(ockam, project):
    from tests.helpers import wait_until

    info_path = project()
    ockam("identity", "create", "edge-id")
    ockam("node", "create", "edge", "--identity", "edge-id", "--project", str(info_path),
          "--enrollment-ticket", ockam("project", "ticket"))
    ockam("relay", "create", "edge", "--at", "/project/default", "--to", "edge")
    ockam("node", "stop", "project")
    ockam("node", "start", "project")  # same identity, same port, members kept on disk

    def reachable():
        proc = ockam.run("message", "send", "back", "--timeout", "2",
                         "--to", "/project/default/service/forward_to_edge/service/uppercase", check=False)
        return proc.stdout.strip() == "BACK"

    wait_until(reachable, timeout=40, interval=0.5, what="the relay to be re-established")


def test_project_node_by_command_and_members_from_toml(ockam, tmp_path):
    ockam("node", "create", "hub", "--as-project", "lab")
    info = tmp_path / "lab.json"
    info.write_text(ockam("project", "information", "lab", "--output", "json"))
    ticket = ockam("project", "ticket", "lab", "--relay", "plc")
    ockam("identity", "create", "plc-id")
    edge = tmp_path / "edge.toml"
    edge.write_text('[node]\nname = "plc"\nidentity = "plc-id"\n\n'
                    '[membership]\nproject = "lab.json"\nenrollment_ticket = "${TICKET}"\n\n'
                    '[[relays]]\nname = "plc"\nat = "/project/lab"\n')
    proc = ockam.run("node", "create", "--config", str(edge), check=False)
    assert proc.returncode == 2 and "environment variable TICKET is not set" in proc.stderr
    ockam.env["TICKET"] = ticket
    ockam("node", "create", "--config", str(edge))

    from tests.helpers import wait_until

    def reachable():
        return ockam.run("message", "send", "hi", "--timeout", "2", "--to",
                         "/project/lab/service/forward_to_plc/service/uppercase", check=False).stdout.strip() == "HI"

    wait_until(reachable, timeout=20, interval=0.5, what="the TOML member's relay")
    ockam("node", "stop", "plc")
    ockam("node", "start", "plc")  # restarts do not spend the (used) ticket again: already a member
    wait_until(reachable, timeout=30, interval=0.5, what="the relay after a restart")


def start_relay_box(ockam, tmp_path) -> int:
    """Node `box`, one more relay box of the project of tmp_path/project.json, from a TOML
    topology as an operator would run it; returns its port once the project lists it."""
    from tests.helpers import wait_until

    box_port = free_port()
    ockam("identity", "create", "box-id")  # another machine: another identity
    box = tmp_path / "box.toml"
    box.write_text(f'[node]\nname = "box"\nidentity = "box-id"\ntcp_listener_address = "127.0.0.1:{box_port}"\n\n'
                   '[membership]\nproject = "project.json"\nenrollment_ticket = "${BOX_TICKET}"\nrelay_box = true\n')
    ockam.env["BOX_TICKET"] = ockam("project", "ticket", "--relay-box", f"127.0.0.1:{box_port}")
    ockam("node", "create", "--config", str(box))
    wait_until(lambda: len(json.loads(ockam("project", "information", "--at", "project", "--output", "json"))
                           ["access_routes"]) == 2, timeout=20, interval=0.3, what="the box to enroll")
    return box_port


def test_a_project_with_two_relay_boxes_survives_losing_its_project_node(ockam, project, tmp_path, http_server):
    """A second relay box enrolled with `project ticket --relay-box`; an edge registers at
    both; an inlet through /project/default keeps working when the project node is killed."""
    import os
    import signal

    from tests.helpers import wait_until

    project()
    box_port = start_relay_box(ockam, tmp_path)
    box_id = json.loads(ockam("node", "show", "box", "--output", "json"))["identifier"]
    assert f"Relay box: /dnsaddr/127.0.0.1/tcp/{box_port}/service/api ({box_id})" in ockam(
        "project", "information", "--at", "project")
    info_path = tmp_path / "project2.json"
    info_path.write_text(ockam("project", "information", "--at", "project", "--output", "json"))

    ockam("node", "create", "edge", "--project", str(info_path), "--enrollment-ticket", ockam("project", "ticket"))
    relays = json.loads(ockam("relay", "create", "edge", "--at", "/project/default", "--to", "edge",
                              "--output", "json"))["at_each"]
    box_at = f"/project/default[127.0.0.1:{box_port}]"
    assert [(r["at"], r["state"]) for r in relays] == [("/project/default", "up"), (box_at, "up")]
    target = free_port()
    http_server(target)
    ockam("tcp-outlet", "create", "--at", "edge", "--to", f"127.0.0.1:{target}")
    ockam("node", "create", "user", "--project", str(info_path))
    inlet = free_port()
    ockam("tcp-inlet", "create", "--at", "user", "--from", f"127.0.0.1:{inlet}", "--alias", "web",
          "--to", "/project/default/service/forward_to_edge/secure/api/service/outlet")  # boxes see ciphertext

    def curl() -> str:
        proc = subprocess.run(["curl", "-sS", "--max-time", "10", "--head", f"127.0.0.1:{inlet}"],
                              capture_output=True, text=True, timeout=20)
        return proc.stdout.splitlines()[0].strip() if proc.stdout else proc.stderr

    assert curl() == "HTTP/1.0 200 OK"
    os.kill(json.loads(ockam("node", "show", "project", "--output", "json"))["pid"], signal.SIGKILL)

    def route_states():
        inlet = json.loads(ockam("tcp-inlet", "show", "web", "--at", "user", "--output", "json"))
        return [(route["route"], route["state"]) for route in inlet["routes"]]

    wait_until(lambda: route_states() == [("/project/default/service/forward_to_edge/secure/api/service/outlet", "down"),
                                          (f"{box_at}/service/forward_to_edge/secure/api/service/outlet", "up")],
               timeout=20, interval=0.3, what="the inlet to see the project node gone")
    assert [curl() for _ in range(3)] == ["HTTP/1.0 200 OK"] * 3
    # the edge and the box restart while the project node is still down: with its credential,
    # kept on disk, the edge registers at the box again
    for node in ("edge", "box"):
        ockam("node", "stop", node)
        ockam("node", "start", node)
    relays = json.loads(ockam("relay", "create", "edge", "--at", "/project/default", "--to", "edge",
                              "--output", "json"))["at_each"]
    assert [(r["at"], r["state"]) for r in relays] == [("/project/default", "down"), (box_at, "up")]
    ockam("tcp-outlet", "create", "--at", "edge", "--to", f"127.0.0.1:{target}")
    wait_until(lambda: curl() == "HTTP/1.0 200 OK", timeout=20, interval=0.3, what="the portal through the box")
    # the edge's registration at the box alone can go; the one at the (dead) project node stays
    ockam("relay", "delete", "edge", "--to", "edge", "--relay-node", box_at)
    assert [r["at"] for r in json.loads(ockam("relay", "list", "--to", "edge", "--output", "json"))] == [
        "/project/default"]
    ockam("node", "delete", "--all")


def test_node_reload_takes_a_new_relay_box_from_project_json(ockam, project, tmp_path):
    from tests.helpers import wait_until

    info_path = project()  # tmp_path/project.json, with the project node only
    ockam("identity", "create", "edge-id")
    edge = tmp_path / "edge.toml"
    edge.write_text('[node]\nname = "edge"\nidentity = "edge-id"\n\n'
                    '[membership]\nproject = "project.json"\nenrollment_ticket = "${TICKET}"\n\n'
                    '[[relays]]\nname = "edge"\nat = "/project/default"\n')
    ockam.env["TICKET"] = ockam("project", "ticket")
    ockam("node", "create", "--config", str(edge))

    def relay_states():
        return [(r["at"], r["state"]) for r in json.loads(ockam("relay", "list", "--to", "edge", "--output", "json"))]

    wait_until(lambda: relay_states() == [("/project/default", "up")], timeout=20, interval=0.3, what="the relay")
    box_port = start_relay_box(ockam, tmp_path)
    info_path.write_text(ockam("project", "information", "--at", "project", "--output", "json"))
    ockam("node", "reload", "edge")
    box_at = f"/project/default[127.0.0.1:{box_port}]"
    wait_until(lambda: relay_states() == [("/project/default", "up"), (box_at, "up")], timeout=20, interval=0.3,
               what="the registration at the new box")
    assert ockam("node", "reload", "edge").startswith("Reloaded node edge: 0 started, 0 stopped")  # nothing new
    first = json.loads(ockam("relay", "list", "--to", "edge", "--output", "json"))[0]
    other = dict(json.loads(info_path.read_text()), name="other")
    other.pop("id")
    info_path.write_text(json.dumps(other))
    assert_one_line_error(ockam.run("node", "reload", "edge", check=False),
                          match="project.json now describes another project (or another authority): that takes a restart")
    # the box taken out of project.json again: its registration stops, the other is left alone
    info = dict(other, name="default")
    info["access_routes"] = info["access_routes"][:1]
    info_path.write_text(json.dumps(info))
    assert ockam("node", "reload", "edge").endswith(
        f"project.json: project default, relay boxes 127.0.0.1:{info['access_route'].split('/')[4]}")
    relays = json.loads(ockam("relay", "list", "--to", "edge", "--output", "json"))
    assert [(r["at"], r["state"], r["registrations"]) for r in relays] == [
        ("/project/default", "up", first["registrations"])]
    info_path.unlink()  # a project file gone: the reload goes on, the project stays as it was
    ockam("node", "reload", "edge")
    assert relay_states() == [("/project/default", "up")]


def test_a_member_whose_project_node_is_away_at_its_start_joins_once_it_is_back(ockam, project, tmp_path):
    from tests.helpers import wait_until

    project()
    ticket = ockam("project", "ticket")
    ockam("node", "stop", "project")
    ockam("identity", "create", "edge-id")
    edge = tmp_path / "edge.toml"
    edge.write_text('[node]\nname = "edge"\nidentity = "edge-id"\n\n'
                    '[membership]\nproject = "project.json"\nenrollment_ticket = "${TICKET}"\n\n'
                    '[[relays]]\nname = "edge"\nat = "/project/default"\n')
    ockam.env["TICKET"] = ticket
    ockam("node", "create", "--config", str(edge))  # the ticket cannot be spent now
    ockam("node", "start", "project")
    wait_until(lambda: [r["state"] for r in json.loads(ockam("relay", "list", "--to", "edge", "--output", "json"))]
               == ["up"], timeout=30, interval=0.5, what="the edge to enroll and register")
    assert len(json.loads(ockam("project", "member", "list", "--at", "project", "--output", "json"))) == 1
