"""Nodes started from TOML through the real CLI: `node run` (what `make run` does) and `node create --config`."""

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


