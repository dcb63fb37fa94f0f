"""Nodes started from TOML through the real CLI: `node run` (what `make run` does) and `node create --config`."""

import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path

from tests.e2e.conftest import ockam_command
from tests.helpers import free_port, wait_until

CONFIG = Path(__file__).parents[2] / "config"


def http_get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
        return response.read().decode()


def portal_topology(tmp_path, listener: int, inlet: int, http: int) -> Path:
    text = (CONFIG / "default.toml").read_text()
    text = text.replace("7000", str(listener)).replace("6000", str(inlet)).replace("9000", str(http))
    path = tmp_path / "demo.toml"
    path.write_text(text)
    return path


def test_node_run_serves_the_demo_portal_and_stops_on_sigterm(ockam, tmp_path):
    inlet = free_port()
    path = portal_topology(tmp_path, free_port(), inlet, free_port())
    proc = subprocess.Popen(ockam_command() + ["node", "run", str(path)], env=ockam.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        body = wait_until(lambda: _try(http_get, inlet), timeout=15, what="the demo portal")
        assert "came through a portal" in body
        assert "demo" in ockam("relay", "list")  # the node run is the default node: no --at needed
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert "relay demo at" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_node_create_with_config_runs_in_the_background(ockam, tmp_path):
    inlet = free_port()
    path = portal_topology(tmp_path, free_port(), inlet, free_port())
    assert ockam("node", "create", "--config", str(path)) == "/node/demo"
    assert "came through a portal" in wait_until(lambda: _try(http_get, inlet), timeout=15, what="the portal")
    ockam("node", "stop", "demo")
    ockam("node", "start", "demo")
    assert "came through a portal" in wait_until(lambda: _try(http_get, inlet), timeout=15, what="the portal")


def test_bad_topology_is_one_line_with_exit_2(ockam, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[node]\nname = "x"\n\n[[inlets]]\nfrom = "127.0.0.1:1"\ntoo = "/service/x"\n')
    for args in (["config", "check", str(bad)], ["node", "run", str(bad)], ["node", "create", "--config", str(bad)]):
        proc = ockam.run(*args, check=False)
        assert proc.returncode == 2, proc
        assert proc.stderr.strip() == f"Error: {bad}:6: inlets[0].too: unknown key (did you mean 'to'?)"
    assert ockam("config", "check", str(CONFIG / "default.toml")).endswith("1 inlets)")


def _try(fn, *args):
    try:
        return fn(*args)
    except OSError:
        return None




def _write_topology(path, listener, inlets, outlets):
    lines = ['[node]', 'name = "edge"', f'tcp_listener_address = "127.0.0.1:{listener}"', '']
    for bind, target in outlets:
        lines += ['[[outlets]]', f'from = "/service/{bind}"', f'to = "127.0.0.1:{target}"', '']
    for bind, outlet in inlets:
        lines += ['[[inlets]]', f'from = "127.0.0.1:{bind}"', f'to = "/node/edge/service/{outlet}"', '']
    path.write_text("\n".join(lines))


def test_reload_adds_and_removes_without_touching_live_connections(ockam, tmp_path, echo_target):
    import socket

    target = echo_target
    listener, first, second = free_port(), free_port(), free_port()
    path = tmp_path / "edge.toml"
    _write_topology(path, listener, [(first, "o1")], [("o1", target)])
    ockam("node", "create", "--config", str(path))
    live = socket.create_connection(("127.0.0.1", first), timeout=10)
    live.sendall(b"before")
    assert live.recv(100) == b"before"

    _write_topology(path, listener, [(first, "o1"), (second, "o2")], [("o1", target), ("o2", target)])
    summary = ockam("node", "reload", "edge", "--output", "json")
    assert '"removed": 0' in summary and '"unchanged": 2' in summary
    with socket.create_connection(("127.0.0.1", second), timeout=10) as new:
        new.sendall(b"new inlet")
        assert new.recv(100) == b"new inlet"
    live.sendall(b"still here")
    assert live.recv(100) == b"still here", "an unchanged inlet keeps its live connections"

    # a broken file: the reload fails with file:line:key, exit code 2 as `config check`, and nothing changes
    path.write_text(path.read_text() + '\n[[inlets]]\nfrom = "127.0.0.1:1"\nroute = "/x"\n')
    proc = ockam.run("node", "reload", "edge", check=False)
    assert proc.returncode == 2 and "inlets[2].route: unknown key" in proc.stderr
    assert "previous configuration is still in force" in proc.stderr

    # SIGHUP applies the file too: drop the second inlet
    _write_topology(path, listener, [(first, "o1")], [("o1", target)])
    pid = [p for p in ockam.node_pids()][0]
    os.kill(pid, signal.SIGHUP)
    wait_until(lambda: _try(socket.create_connection, ("127.0.0.1", second), 1) is None, what="inlet 2 to go")
    live.sendall(b"after hup")
    assert live.recv(100) == b"after hup"
    live.close()


def test_reload_that_cannot_apply_keeps_the_old_configuration(ockam, tmp_path):
    import socket

    listener, inlet = free_port(), free_port()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    path = tmp_path / "edge.toml"
    _write_topology(path, listener, [(inlet, "o1")], [])
    ockam("node", "create", "--config", str(path))
    _write_topology(path, listener, [(inlet, "o1"), (busy.getsockname()[1], "o1")], [])
    proc = ockam.run("node", "reload", "edge", check=False)
    assert proc.returncode == 1 and "Address already in use" in proc.stderr
    assert [i["bind_address"] for i in __import__("json").loads(
        ockam("tcp-inlet", "list", "--at", "edge", "--output", "json"))] == [f"127.0.0.1:{inlet}"]
    _write_topology(path, free_port(), [(inlet, "o1")], [])
    proc = ockam.run("node", "reload", "edge", check=False)
    assert "needs a restart" in proc.stderr
    busy.close()


def test_reload_keeps_the_command_line_overrides(ockam, tmp_path):
    """Options given at creation (listener, identity) still override the edited file."""
    path = tmp_path / "edge.toml"
    path.write_text('[node]\nname = "edge"\n')
    ockam("identity", "create", "edge-id")
    listener = free_port()
    ockam("node", "create", "--config", str(path), "--tcp-listener-address", f"127.0.0.1:{listener}",
          "--identity", "edge-id")
    inlet = free_port()
    path.write_text(f'[node]\nname = "edge"\n\n[[inlets]]\nfrom = "127.0.0.1:{inlet}"\nto = "/service/outlet"\n')
    summary = ockam("node", "reload", "edge", "--output", "json")
    assert f"inlet 127.0.0.1:{inlet}" in summary
    show = ockam("node", "show", "edge", "--output", "json")
    assert f'"listener_address": "127.0.0.1:{listener}"' in show
    assert ockam("identity", "show", "edge-id") in show


def test_node_run_refuses_a_node_that_is_running(ockam, tmp_path):
    """A second copy would take over the node's control socket and state; when it exited,
    the first would forward traffic but could no longer be managed."""
    path = portal_topology(tmp_path, free_port(), free_port(), free_port())
    assert ockam("node", "create", "--config", str(path)) == "/node/demo"
    proc = ockam.run("node", "run", str(path), check=False)
    assert (proc.returncode, proc.stderr.strip()) == (1, "Error: node demo already exists and is running")
    assert ockam("node", "show", "demo", "--output", "json")  # the first one is still managed


def test_reload_reads_variables_as_config_check_does_and_says_from_where(ockam, tmp_path):
    """Issue 13: a variable set in the shell passed `config check`, then `node reload` failed
    with "not set" (it read the node's environment only)."""
    path = tmp_path / "edge.toml"
    path.write_text('[node]\nname = "edge"\n')
    ockam("node", "create", "--config", str(path))
    inlet = free_port()
    path.write_text('[node]\nname = "edge"\n\n[[inlets]]\nfrom = "127.0.0.1:${INLET_PORT}"\n'
                    'to = "${OUTLET_ROUTE:-/service/outlet}"\n')
    shell = {**ockam.env, "INLET_PORT": str(inlet)}
    check = subprocess.run(ockam_command() + ["config", "check", str(path)], env=shell, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    reload = subprocess.run(ockam_command() + ["node", "reload", "edge"], env=shell, capture_output=True, text=True)
    assert reload.returncode == 0, reload.stderr
    assert reload.stdout.strip() == ("Reloaded node edge: 1 started, 0 stopped, 0 unchanged (variables: INLET_PORT "
                                     "from the shell of 'node reload'; OUTLET_ROUTE from its default)")
    inlets = ockam("tcp-inlet", "list", "--at", "edge", "--output", "json")
    assert f'"bind_address": "127.0.0.1:{inlet}"' in inlets
    # a reload from a shell without it reads it as `config check` there would: not set
    proc = ockam.run("node", "reload", "edge", check=False)
    assert proc.returncode == 2 and "environment variable INLET_PORT is not set" in proc.stderr, proc.stderr
    # SIGHUP (systemctl reload) has no shell: it uses what the last `node reload` brought
    pid = json.loads(ockam("node", "show", "edge", "--output", "json"))["pid"]
    os.kill(pid, signal.SIGHUP)
    log = Path(ockam.home, "nodes", "edge", "node.log")
    wait_until(lambda: "INLET_PORT': \"the shell of the last 'node reload'\"" in log.read_text(), timeout=10,
               what="the SIGHUP reload")
