"""Bad input through the real CLI: one line on stderr, a non-zero exit, the node keeps running."""

import json
import os
import socket
import struct
import subprocess
import shutil

import pytest

from tests.e2e.conftest import ockam_command
from tests.helpers import free_port
from appliance.wire.framing import PROTOCOL_VERSION_BYTE as VERSION


def assert_one_line_error(proc, code=1, match=""):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert match in lines[0], lines[0]


@pytest.fixture
def n1(ockam):
    ockam("node", "create", "n1")
    return ockam


def test_unknown_node(ockam):
    assert_one_line_error(ockam.run("node", "show", "ghost", check=False), match="does not exist")
    assert_one_line_error(ockam.run("tcp-connection", "list", "--node", "ghost", check=False),
                          match="does not exist")


def test_bad_command_line(ockam):
    assert_one_line_error(ockam.run("nodez", check=False), code=2, match="unknown command 'nodez' (did you mean 'node'?)")
    assert_one_line_error(ockam.run("node", "create", "--bogus", check=False), code=2,
                          match="unknown option '--bogus' for 'ockam node create'")
    assert_one_line_error(ockam.run("tcp-inlet", "create", "--form", "1", "--to", "x", check=False), code=2,
                          match="unknown option '--form' (did you mean '--from'?) for 'ockam tcp-inlet create'")
    assert_one_line_error(ockam.run("node", "create", "a", "b", check=False), code=2,
                          match="unexpected argument 'b' for 'ockam node create' (usage: ockam node create [<name>] ")
    assert_one_line_error(ockam.run("node", "lst", check=False), code=2,
                          match="unknown subcommand 'lst' (did you mean 'list'?) for 'ockam node'")
    assert_one_line_error(ockam.run("relay", "delete", check=False), code=2,
                          match="missing <name> for 'ockam relay delete' (usage: ockam relay delete <name> [--to=<node>]")
    assert_one_line_error(ockam.run("tcp-inlet", "create", "--from", "127.0.0.1:1", check=False), code=2,
                          match="missing --to=<route> for 'ockam tcp-inlet create'")
    assert_one_line_error(ockam.run("relay", "list", "--at", check=False), code=2,
                          match="--at needs a value for 'ockam relay list'")
    assert_one_line_error(ockam.run("node", "create", "bad/name", check=False), code=2, match="bad node name")
    assert_one_line_error(ockam.run("message", "send", "hi", "--to", "service/echo", check=False), code=2,
                          match="must start with '/'")
    assert_one_line_error(ockam.run("--output", "xml", "node", "list", check=False), code=2, match="plain or json")


def test_errors_are_json_on_stderr_with_output_json(ockam):
    proc = ockam.run("--output", "json", "node", "show", "ghost", check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert json.loads(proc.stderr) == {"error": "node 'ghost' does not exist (see 'ockam node list')", "exit_code": 1}
    proc = ockam.run("node", "create", "--bogus", "--output", "json", check=False)
    assert proc.returncode == 2 and json.loads(proc.stderr)["exit_code"] == 2


def test_at_names_the_node_wherever_a_node_is_named(n1):
    """n1 is the default node: what --at n2 lists must be n2's."""
    n1("node", "create", "n2")
    n1("node", "create", "hub", "--tcp-listener-address=127.0.0.1:0")  # a relay
    n1("relay", "create", "r2", "--at", "/node/hub", "--to", "n2")
    assert "r2" in n1("relay", "list", "--at", "n2") and "r2" not in n1("relay", "list")
    listener = n1("node", "show", "n2", "--output", "json").split('"listener_address": "')[1].split('"')[0]
    assert listener in n1("tcp-listener", "list", "--at", "n2") and listener not in n1("tcp-listener", "list")
    worker = n1("tcp-connection", "create", "--to", "/node/n1", "--at", "n2")
    assert worker in n1("tcp-connection", "list", "--at", "n2") and worker not in n1("tcp-connection", "list")


def test_output_into_a_closed_pipe_ends_quietly_as_for_sigpipe():
    proc = subprocess.Popen(ockam_command() + ["tcp-inlet", "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # `| head` that has read enough: before the command writes a byte
    assert (proc.wait(timeout=30), proc.stderr.read()) == (141, b"")
    proc.stderr.close()


def test_help_starts_with_the_usage():
    proc = subprocess.run(ockam_command() + ["--help"], capture_output=True, text=True, check=True)
    assert proc.stdout.startswith("Usage:\n  ockam <command> [<args>...]\n")


def test_busy_port(n1):
    port = int(n1("node", "show", "n1", "--output", "json").split('"listener_address": "127.0.0.1:')[1].split('"')[0])
    assert_one_line_error(n1.run("node", "create", "n2", f"--tcp-listener-address=127.0.0.1:{port}", check=False),
                          match="Address already in use")
    assert "n2" not in n1("node", "list")
    assert_one_line_error(n1.run("tcp-inlet", "create", "--at", "n1", "--from", f"127.0.0.1:{port}",
                                 "--to", "/service/outlet", check=False), match="Address already in use")


def test_malformed_and_unreachable_routes(n1):
    # a route the user mistyped is a usage error (2), through a node's control API as well
    assert_one_line_error(n1.run("message", "send", "hi", "--from", "n1", "--to", "service/echo", check=False),
                          code=2, match="must start with '/'")
    assert_one_line_error(n1.run("message", "send", "hi", "--to", "/ip4/127.0.0.1/tcp/99999", check=False),
                          code=2, match="bad TCP port")
    assert_one_line_error(n1.run("message", "send", "hi", "--from", "n1", "--to",
                                 f"/ip4/127.0.0.1/tcp/{free_port()}/service/echo", check=False),
                          match="Connection refused")
    assert_one_line_error(n1.run("message", "send", "hi", "--from", "n1", "--to", "/service/missing",
                                 "--timeout", "0.5", check=False), match="no reply")
    assert n1("message", "send", "still", "--to", "/node/n1/service/uppercase") == "STILL"


def test_duplicate_relay_name(n1):
    n1("node", "create", "hub", "--tcp-listener-address=127.0.0.1:0")  # a listener address: a relay
    n1("node", "create", "n3")
    n1("relay", "create", "shared", "--at", "/node/hub", "--to", "n1")
    assert_one_line_error(n1.run("relay", "create", "shared", "--at", "/node/hub", "--to", "n3", check=False),
                          match="relay forward_to_shared is taken at node hub")


def test_a_node_without_a_listener_address_is_no_relay(n1):
    n1("node", "create", "n3")
    assert_one_line_error(n1.run("relay", "create", "x", "--at", "/node/n1", "--to", "n3", check=False),
                          match="node n1 is not a relay (give it a TCP listener address, or relay = true)")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (make test installs it)")
def test_outlet_target_down_gives_the_client_a_closed_connection(n1):
    n1("tcp-outlet", "create", "--at", "n1", "--to", f"127.0.0.1:{free_port()}")
    port = free_port()
    n1("tcp-inlet", "create", "--at", "n1", "--from", f"127.0.0.1:{port}", "--to", "/node/n1/service/outlet")
    curl = subprocess.run(["curl", "-sS", "--max-time", "20", f"http://127.0.0.1:{port}/"],
                          capture_output=True, text=True, timeout=30)
    assert curl.returncode in (52, 56), curl  # empty reply / connection reset, never a timeout (28)


def test_garbage_frames_do_not_take_the_node_down(n1):
    listener = n1("node", "show", "n1", "--output", "json").split('"listener_address": "')[1].split('"')[0]
    host, port = listener.rsplit(":", 1)
    for garbage in (b"\x09junk", VERSION + struct.pack(">I", 1 << 31), VERSION + b"\x00\x00\x00\x03\xff\xff\xff"):
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(garbage)
            while sock.recv(100):
                pass
    assert n1("message", "send", "alive", "--to", "/node/n1/service/echo") == "alive"


@pytest.mark.skipif(os.environ.get("OCKAM_CONTROL") == "tcp",
                    reason="the nodes serve loopback TCP (test_control_channel.py checks their token file)")
def test_control_socket_is_private(n1):
    from pathlib import Path

    node_dir = Path(n1.home, "nodes", "n1")
    assert oct(os.stat(node_dir).st_mode & 0o777) == "0o700"
    assert oct(os.stat(node_dir / "api.sock").st_mode & 0o777) == "0o600"


def test_an_abbreviated_option_docopt_takes_is_not_called_unknown():
    from appliance.cli.main import what_is_wrong
    from appliance.cli.portal_cmd import INLET_USAGE

    assert what_is_wrong(["tcp-inlet", "create", "--fr", "127.0.0.1:1"], INLET_USAGE).startswith(
        "missing --to=<route> for 'ockam tcp-inlet create'")
    assert what_is_wrong(["tcp-inlet", "create", "--form", "1"], INLET_USAGE).startswith(
        "unknown option '--form' (did you mean '--from'?) for 'ockam tcp-inlet create'")


def test_vv_shows_what_the_command_asked_its_node(n1):
    proc = n1.run("-vv", "relay", "list", "--at", "n1")
    assert proc.returncode == 0
    assert "DEBUG appliance.cli.client: node n1 <- relay.list {}" in proc.stderr.splitlines()
    assert 'DEBUG appliance.cli.client: node n1 -> {"ok": true, "result": []}' in proc.stderr.splitlines()
    assert n1.run("relay", "list", "--at", "n1").stderr == ""  # and nothing without it


def test_what_is_wrong_never_fails_whatever_is_typed():
    """Every line docopt refuses gets a reason, never a crash of its own (one random walk over
    all usages, bounded)."""
    import importlib

    from docopt import DocoptExit, docopt
    from hypothesis import given, settings, strategies as st

    from appliance.cli.main import COMMAND_MODULES, what_is_wrong

    words = st.sampled_from(["create", "list", "show", "delete", "member", "remove", "run", "x", "-", "--",
                             "--to", "--to=/x", "--at", "--at=n", "--hex", "--hex=1", "--t", "--fr", "-v", "a"])

    @settings(max_examples=300, deadline=None)
    @given(command=st.sampled_from(sorted(COMMAND_MODULES)), rest=st.lists(words, max_size=6))
    def check(command, rest):
        usage = importlib.import_module(COMMAND_MODULES[command]).usage(command)
        argv = [command] + rest
        try:
            docopt(usage, argv=argv, default_help=False)
        except DocoptExit:
            reason = what_is_wrong(argv, usage)
            assert reason and "\n" not in reason

    check()
