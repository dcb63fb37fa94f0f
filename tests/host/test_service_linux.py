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
