"""A topology applied to an in-process node: trust declarations, reload diffs, rollback."""

import pytest
from gevent import socket

from appliance.config.topology import parse
from appliance.host.deployment import Deployment, ReloadError
from appliance.node.runtime import NodeRuntime
from appliance.secure.identity import Identity
from tests.helpers import echo_until_eof, free_port


@pytest.fixture
def runtime():
    node = NodeRuntime("dep", identity=Identity.generate())
    yield node
    node.shutdown()


@pytest.fixture
def echo_port():
    from gevent.server import StreamServer

    server = StreamServer(("127.0.0.1", 0), lambda sock, _addr: echo_until_eof(sock))
    server.start()
    yield server.address[1]
    server.stop()


def topology(text: str):
    return parse(text, "dep.toml", environ={})


def test_trust_declarations_reach_the_runtime(runtime, echo_port):
    me = runtime.identifier
    stranger = "I" + "3" * 40
    inlet = free_port()
    Deployment(runtime, topology(f"""
[[secure_channel_listeners]]
address = "/service/members"
authorized = ["{stranger}"]

[[outlets]]
to = "127.0.0.1:{echo_port}"
authorized = ["{me}"]

[[inlets]]
from = "127.0.0.1:{inlet}"
to = "/secure/api/service/outlet"
authorized = ["{me}"]
""")).start()
    assert runtime.channels.listeners["members"].authorized == {stranger}
    assert runtime.portals.outlets["outlet"].authorized == {me}
    # the inlet's route goes through a secure channel to this node itself: authorized both ways
    with socket.create_connection(("127.0.0.1", inlet), timeout=10) as sock:
        sock.sendall(b"trusted")
        assert sock.recv(100) == b"trusted"


def test_reload_diff_and_rollback(runtime, echo_port):
    first, second = free_port(), free_port()
    base = f'[[outlets]]\nto = "127.0.0.1:{echo_port}"\n\n[[inlets]]\nfrom = "127.0.0.1:{first}"\nto = "/service/outlet"\n'
    deployment = Deployment(runtime, topology(base))
    deployment.start()
    summary = deployment.reload(topology(base + f'\n[[inlets]]\nfrom = "127.0.0.1:{second}"\nto = "/service/outlet"\n'
                                         '\n[[secure_channel_listeners]]\naddress = "/service/extra"\n'))
    assert summary == {"added": ["secure channel listener /service/extra",
                                 f"inlet 127.0.0.1:{second} => /service/outlet"], "removed": 0, "unchanged": 2}
    with pytest.raises(ReloadError, match="needs a restart"):
        deployment.reload(topology('[node]\nidentity = "other"\n' + base))
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    with pytest.raises(ReloadError, match="previous configuration is still in force"):
        deployment.reload(topology(base + f'\n[[inlets]]\nfrom = "127.0.0.1:{busy.getsockname()[1]}"\n'
                                          'to = "/service/outlet"\n'))
    assert "extra" in runtime.channels.listeners, "a failed reload leaves the running items alone"
    assert sorted(i["bind_address"] for i in runtime.control.inlet_list()) == sorted([f"127.0.0.1:{first}", f"127.0.0.1:{second}"])
    busy.close()


def test_udp_portals_from_the_topology_and_added_by_a_reload(runtime):
    service = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    service.bind(("127.0.0.1", 0))
    first, second = free_port(), free_port()
    base = (f'[[udp_outlets]]\nto = "127.0.0.1:{service.getsockname()[1]}"\nfrom = "/service/syslog"\n\n'
            f'[[udp_inlets]]\nfrom = "127.0.0.1:{first}"\nto = "/service/syslog"\nalias = "syslog"\n')
    deployment = Deployment(runtime, topology(base))
    deployment.start()
    summary = deployment.reload(topology(base + f'\n[[udp_inlets]]\nfrom = "127.0.0.1:{second}"\nto = "/service/syslog"\n'))
    assert summary == {"added": [f"UDP inlet 127.0.0.1:{second} => /service/syslog"], "removed": 0, "unchanged": 2}
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    service.settimeout(5)
    client.settimeout(5)
    for port, line in ((first, b"<13>one"), (second, b"<13>two")):
        client.sendto(line, ("127.0.0.1", port))
        data, flow = service.recvfrom(100)
        assert data == line
        service.sendto(b"ack " + line, flow)  # an answer goes back to its client through the inlet
        assert client.recv(100) == b"ack " + line
    assert runtime.control.udp_outlet_show("syslog")["flows"] == 2
    client.close()
    service.close()


@pytest.mark.parametrize("edit, field", [("[node]\nrelay_grace = 5\n", "relay_grace"),
                                         ("[limits]\nidle_timeout = 2\n", "limits"),
                                         ("[node]\nrelay = false\n", "relay"),
                                         ("[node]\nlink_timeout = 30\n", "link_timeout")])
def test_settings_read_at_start_need_a_restart_and_say_so(runtime, edit, field):
    deployment = Deployment(runtime, topology(""))
    deployment.start()
    with pytest.raises(ReloadError, match=f"changing {field} needs a restart; nothing was changed"):
        deployment.reload(topology(edit))


def test_a_reload_that_adds_a_relay_node_leaves_the_others_alone(echo_port):
    """It re-registered the name everywhere, resetting connections through the first relay."""
    from tests.helpers import wait_until

    listeners = {}

    def node(name):
        runtime = NodeRuntime(name, node_lookup=listeners.get, identity=Identity.generate())
        listeners[name] = runtime.tcp.listen("127.0.0.1:0").address
        return runtime

    r1, r2, edge = node("r1"), node("r2"), NodeRuntime("edge", node_lookup=listeners.get)
    try:
        base = f'[[outlets]]\nto = "127.0.0.1:{echo_port}"\n[[relays]]\nname = "edge"\n'
        deployment = Deployment(edge, topology(base + 'at = "/node/r1"\n'))
        deployment.start()
        first = edge.relays.named("forward_to_edge")[0]
        wait_until(lambda: first.condition.is_up, what="the registration at r1")
        summary = deployment.reload(topology(base + 'at = ["/node/r1", "/node/r2"]\n'))
        assert summary["added"] == ["relay edge at /node/r2"] and summary["removed"] == 0
        assert edge.relays.named("forward_to_edge")[0] is first and first.registrations == 1
        wait_until(lambda: all(c.condition.is_up for c in edge.relays.named("forward_to_edge")), what="both")
        deployment.reload(topology(base + 'at = ["/node/r2"]\n'))
        assert [c.at_text for c in edge.relays.named("forward_to_edge")] == ["/node/r2"]
    finally:
        for runtime in (edge, r1, r2):
            runtime.shutdown()


@pytest.fixture
def project_box_edge():
    """A project node, one more relay box `box`, and a member `edge` that knows only the
    project node: (project node, box, edge, the project with the box, the box's address)."""
    from appliance.node.project.info import ProjectInfo, ProjectNode

    project = NodeRuntime("project", project_node=ProjectNode("default", "", {}, lambda _m: None))
    project.listen("127.0.0.1:0")
    alone = ProjectInfo.from_json(project.control.project_info())
    box = NodeRuntime("box", projects=[alone], relay_box_of="default")
    box_address = box.tcp.listen("127.0.0.1:0").address
    box.control.project_enroll(alone.to_json(), project.control.project_ticket(box=box_address)["token"])
    edge = NodeRuntime("edge", projects=[alone])
    edge.control.project_enroll(alone.to_json(), project.control.project_ticket()["token"])
    yield project, box, edge, ProjectInfo.from_json(project.control.project_info()), box_address
    for runtime in (edge, box, project):
        runtime.shutdown()


def relay_and_inlet(echo_port: int, inlet_port: int) -> str:
    return (f'[[outlets]]\nto = "127.0.0.1:{echo_port}"\n[[relays]]\nname = "edge"\nat = "/project/default"\n'
            f'[[inlets]]\nfrom = "127.0.0.1:{inlet_port}"\n'
            'to = "/project/default/service/forward_to_edge/secure/api/service/outlet"\n')


def test_a_reload_with_a_new_relay_box_in_project_json_adds_it_and_leaves_the_rest(echo_port, project_box_edge):
    """The project's relay boxes as project.json lists them now: a registration at the new box
    is added, the one at the project node stays as it was."""
    from tests.helpers import wait_until

    project, box, edge, with_box, box_address = project_box_edge
    alone = edge.trust.projects["default"]
    inlet_port = free_port()
    text = relay_and_inlet(echo_port, inlet_port)
    deployment = Deployment(edge, topology(text))
    deployment.start()
    first = edge.relays.named("forward_to_edge")[0]
    wait_until(lambda: first.condition.is_up, what="the registration at the project node")
    summary = deployment.reload(topology(text), (lambda: edge.membership.update(with_box),
                                                 lambda: edge.membership.update(alone)))
    box_label = f"/project/default[{box_address}]"
    assert summary["added"] == [f"relay edge at {box_label}", f"inlet 127.0.0.1:{inlet_port} => "
                                "/project/default/service/forward_to_edge/secure/api/service/outlet"]
    assert summary["removed"] == 1  # the inlet, made anew with a route through each box
    assert edge.relays.named("forward_to_edge")[0] is first and first.registrations == 1
    wait_until(lambda: "forward_to_edge" in box.forwarding.relays, what="the registration at the new box")
    assert [r["route"].split("/service/")[0] for r in edge.control.inlet_list()[0]["routes"]] == [
        "/project/default", box_label]


def test_a_failed_reload_puts_the_project_back_before_the_old_items(echo_port, project_box_edge):
    """A reload that takes a box out of the project and fails (a busy port): the old items
    come back made with the old project, the registration at the box included."""
    project, box, edge, with_box, box_address = project_box_edge
    edge.membership.update(with_box)
    text = relay_and_inlet(echo_port, free_port())
    deployment = Deployment(edge, topology(text))
    deployment.start()
    box_label = f"/project/default[{box_address}]"
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        failing = text + f'[[inlets]]\nfrom = "127.0.0.1:{busy.getsockname()[1]}"\nto = "/service/outlet"\n'
        with pytest.raises(ReloadError, match="the previous configuration is still in force"):
            deployment.reload(topology(failing), (lambda: edge.membership.update(with_box._replace(boxes=())),
                                                  lambda: edge.membership.update(with_box)))
    finally:
        busy.close()
    assert sorted(c.at_text for c in edge.relays.named("forward_to_edge")) == ["/project/default", box_label]
    assert len(edge.control.inlet_list()[0]["routes"]) == 2
    assert deployment.reload(topology(text))["added"] == []  # and the next reload finds all in place
