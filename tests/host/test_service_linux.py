"""The systemd unit: what `ockam service install` writes, checked by systemd itself where it can."""

import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.host import service_linux
from appliance.host.state import StateError

REPO = Path(__file__).parents[2]


def test_unit_is_notify_with_watchdog_hardening_and_the_node_command():
    unit = service_linux.render_unit("edge", "/etc/ockam/edge.toml", ["/usr/local/bin/ockam"])
    lines = set(unit.splitlines())
    for expected in ("Type=notify", "NotifyAccess=all", "Restart=always", "WatchdogSec=30",
                     "ExecStart=/usr/local/bin/ockam node run /etc/ockam/edge.toml",
                     "ExecReload=/bin/kill -HUP $MAINPID", "DynamicUser=yes", "NoNewPrivileges=yes",
                     "ProtectSystem=strict", "StateDirectory=ockam", "LimitNOFILE=65536",
                     "Environment=OCKAM_HOME=/var/lib/ockam", "EnvironmentFile=-/etc/ockam/edge.env"):
        assert expected in lines, expected


def test_shipped_unit_matches_what_install_writes():
    shipped = (REPO / "packaging/systemd/ockam-edge.service").read_text()
    assert shipped == service_linux.render_unit("edge", "/etc/ockam/edge.toml", ["/usr/local/bin/ockam"])


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_unit(tmp_path):
    unit = tmp_path / "ockam-edge.service"
    unit.write_text(service_linux.render_unit("edge", "/etc/ockam/edge.toml", ["/bin/true"]))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert proc.returncode == 0 and "ockam-edge" not in proc.stderr, proc.stderr


def test_install_status_uninstall_under_a_root(tmp_path):
    config = REPO / "config/default.toml"
    result = service_linux.install(str(config), None, root=str(tmp_path), start=False)
    unit = tmp_path / "etc/systemd/system/ockam-demo.service"
    assert result["unit"] == str(unit) and unit.exists()
    assert (tmp_path / "etc/ockam/demo.toml").read_text() == config.read_text()
    assert service_linux.status("demo", str(tmp_path))["installed"] is True
    service_linux.uninstall("demo", str(tmp_path), stop=False)
    assert not unit.exists() and service_linux.status("demo", str(tmp_path))["installed"] is False
    with pytest.raises(StateError, match="not installed"):
        service_linux.uninstall("demo", str(tmp_path), stop=False)


def test_install_refuses_a_broken_topology(tmp_path):
    from appliance.config.topology import ConfigError

    bad = tmp_path / "bad.toml"
    bad.write_text('[node]\nname = "x"\nlistener = "1"\n')
    with pytest.raises(ConfigError, match="bad.toml:3: node.listener: unknown key"):
        service_linux.install(str(bad), None, root=str(tmp_path), start=False)
    assert not (tmp_path / "etc").exists()


def test_install_writes_the_variables_the_topology_uses_to_an_environment_file(tmp_path, monkeypatch):
    """The service gets the values the topology was checked with (0600: systemd reads it as
    root); a second install without them in the shell takes them from that file."""
    topology = tmp_path / "edge.toml"
    topology.write_text('[node]\nname = "edge"\n\n[[relays]]\nname = "edge"\n'
                        'at = "/dnsaddr/relay.example/tcp/${RELAY_PORT:-4000}"\n\n'
                        '[membership]\nproject = "project.json"\nenrollment_ticket = "${RELAY_HOST}"\n')
    monkeypatch.setenv("RELAY_HOST", 'relay "one"\\b')  # a value that needs quoting in the file
    monkeypatch.delenv("RELAY_PORT", raising=False)
    result = service_linux.install(str(topology), None, root=str(tmp_path), start=False)
    env = tmp_path / "etc/ockam/edge.env"
    assert result["environment"] == str(env) and result["variables"] == ["RELAY_HOST"]
    assert env.stat().st_mode & 0o777 == 0o600
    assert env.read_text().splitlines()[1:] == ['RELAY_HOST="relay \\"one\\"\\\\b"']
    assert service_linux.read_environment_file(env) == {"RELAY_HOST": 'relay "one"\\b'}
    monkeypatch.delenv("RELAY_HOST")
    assert service_linux.install(str(topology), None, root=str(tmp_path), start=False)["variables"] == ["RELAY_HOST"]


def test_install_refuses_a_topology_whose_variables_have_no_value(tmp_path, monkeypatch):
    from appliance.config.topology import ConfigError

    topology = tmp_path / "edge.toml"
    topology.write_text('[node]\nname = "edge"\n\n[[outlets]]\nto = "${SERVICE_ADDRESS}"\n')
    monkeypatch.delenv("SERVICE_ADDRESS", raising=False)
    with pytest.raises(ConfigError, match="edge.toml:5: outlets\\[0\\].to: environment variable SERVICE_ADDRESS is not set"):
        service_linux.install(str(topology), None, root=str(tmp_path), start=False)
    assert not (tmp_path / "etc").exists()


def test_the_environment_file_is_read_as_systemd_reads_it_and_keeps_what_else_it_held(tmp_path, monkeypatch):
    topology = tmp_path / "edge.toml"
    topology.write_text('# ${SECRET} is not a value: not written\n[node]\nname = "${NODE:-edge}"\n\n[[relays]]\n'
                        'name = "edge"\nat = "/dnsaddr/${RELAY_HOST}/tcp/${RELAY_PORT}"\n')
    env = tmp_path / "etc/ockam/edge.env"
    env.parent.mkdir(parents=True)
    env.write_text("# kept\nRELAY_HOST = 'relay.example.com'\nRELAY_PORT=\"40\\00\"\nHTTPS_PROXY=http://proxy:3128\n")
    env.chmod(0o644)
    monkeypatch.setenv("SECRET", "hunter2")
    monkeypatch.setenv("RELAY_PORT", "4000")
    result = service_linux.install(str(topology), None, root=str(tmp_path), start=False)
    assert result["unit"].endswith("/ockam-edge.service") and result["variables"] == ["RELAY_HOST", "RELAY_PORT"]
    assert service_linux.read_environment_file(env) == {"RELAY_HOST": "relay.example.com", "RELAY_PORT": "4000",
                                                        "HTTPS_PROXY": "http://proxy:3128"}
    assert env.stat().st_mode & 0o777 == 0o600 and "hunter2" not in env.read_text()


def test_the_environment_file_is_replaced_not_written_through_a_link(tmp_path, monkeypatch):
    topology = tmp_path / "edge.toml"
    topology.write_text('[node]\nname = "edge"\n\n[[outlets]]\nto = "${SERVICE_ADDRESS}"\n')
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "etc/ockam").mkdir(parents=True)
    (tmp_path / "etc/ockam/edge.env").symlink_to(victim)
    monkeypatch.setenv("SERVICE_ADDRESS", "127.0.0.1:5432")
    service_linux.install(str(topology), None, root=str(tmp_path), start=False)
    assert victim.read_text() == "precious\n" and not (tmp_path / "etc/ockam/edge.env").is_symlink()


def test_the_watchdog_is_ours_as_the_one_file_bootloaders_child(monkeypatch):
    """WATCHDOG_PID is the unit's main PID: in the one-file executable the bootloader, whose
    child runs the node. The child's pings were skipped, so systemd killed it every 30 s."""
    import os

    from appliance.host import systemd

    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    for pid, interval in ((os.getpid(), 1.5), (os.getppid(), 1.5), (1 << 22, None)):
        monkeypatch.setenv("WATCHDOG_PID", str(pid))
        assert systemd.watchdog_interval() == interval
    monkeypatch.delenv("WATCHDOG_PID")
    assert systemd.watchdog_interval() == 1.5
