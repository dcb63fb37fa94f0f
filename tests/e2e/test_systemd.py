"""The systemd unit under a real systemd (issue 14): `ockam service install` in a private PID
and mount namespace where systemd runs as PID 1, driven with systemctl through nsenter.

    relay r and client c (inlet) here  <-- loopback -->  [namespace: systemd, ockam-edge.service]

Before systemd starts, the namespace gets private tmpfs mounts on /tmp, /var/tmp and /run
(systemd-tmpfiles would otherwise clean the host's /tmp), on /var/lib, /var/log and
/var/cache, and a private copy of /etc: nothing it writes reaches the host. It boots a target
of its own (journald, nothing else), shares the host's network (the relay is on loopback)
and is killed, with everything in it, when the test ends.

The unit runs the one-file binary as deployed, so this runs with OCKAM_BIN (make smoke).
"""

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.helpers import free_port, wait_until

pytestmark = [pytest.mark.timeout(240)]

BINARY = os.environ.get("OCKAM_BIN")
SYSTEMD = "/lib/systemd/systemd"
INSIDE = "/run/ockam-test"  # the namespace's own tmpfs: the binary and the topology
DYNAMIC_UIDS = range(61184, 65520)  # where systemd picks DynamicUser= uids

# every step on its own line: `set -e` ignores a failure inside an `a && b` list
BOOT = f"""#!/bin/sh
set -e
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p {INSIDE}/etc
cp "$1" {INSIDE}/ockam
chmod 0755 {INSIDE}/ockam
cp -a /etc/. {INSIDE}/etc/
mount --bind {INSIDE}/etc /etc
for dir in /tmp /var/tmp /var/lib /var/log /var/cache; do mount -t tmpfs tmpfs "$dir"; done
chmod 1777 /tmp /var/tmp
# systemd as PID 1 raises kernel limits (fs.file-max, net.unix.max_dgram_qlen): not the host's
mount --bind /proc/sys /proc/sys
mount -o remount,bind,ro /proc/sys
mountpoint -q /etc || exit 1  # the private copy, never the host's
rm -rf /etc/systemd/system/*
mkdir -p /run/systemd/system
cat > /run/systemd/system/ockam-test.target <<'EOF'
[Unit]
Description=ockam-appliance test: journald, nothing else
Requires=systemd-journald.socket
After=systemd-journald.socket
EOF
export container=ockam-test
exec {SYSTEMD} --unit=ockam-test.target --log-target=journal
"""

TOPOLOGY = """[node]
name = "edge"

[[relays]]
name = "edge"
at = "/ip4/127.0.0.1/tcp/${RELAY_PORT}"

[[outlets]]
to = "127.0.0.1:${TARGET_PORT}"
"""

# what the test changes in the unit: a watchdog that fires in seconds, not 30 (the mechanism
# is what is tested, not the value)
DROP_IN = "[Service]\nWatchdogSec=3\nTimeoutAbortSec=5\n"


def _why_not() -> str | None:
    if not BINARY:
        return "the unit runs the frozen binary: set OCKAM_BIN (make smoke)"
    if os.geteuid() != 0:
        return "booting systemd in a namespace needs root"
    for tool in ("unshare", "nsenter", "systemctl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not os.path.exists(SYSTEMD):
        return f"{SYSTEMD} is not installed"
    probe = subprocess.run(["unshare", "--fork", "--pid", "--mount", "--cgroup", "--uts", "--ipc", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare is refused here: {probe.stderr.strip()}"
    return None


pytestmark.append(pytest.mark.skipif(_why_not() is not None, reason=_why_not() or ""))


class Namespace:
    """systemd as PID 1 of a private PID, mount and cgroup namespace."""

    def __init__(self, tmp_path: Path):
        script = tmp_path / "boot.sh"
        script.write_text(BOOT)
        script.chmod(0o755)
        with open(tmp_path / "systemd.log", "wb") as console:  # the boot script's errors, if any
            self.unshare = subprocess.Popen(
                ["unshare", "--fork", "--pid", "--mount", "--mount-proc", "--cgroup", "--uts", "--ipc",
                 "--propagation", "private", str(script), BINARY], stdout=console, stderr=subprocess.STDOUT)
        self.pid = wait_until(self._systemd_pid, timeout=15, what="systemd to start in the namespace")
        wait_until(lambda: self.run("systemctl", "is-system-running", check=False).stdout.strip()
                   in ("running", "degraded"), timeout=60, what="systemd to finish booting")

    def _systemd_pid(self) -> int | None:
        """The namespace's PID 1 once it is systemd (after the boot script's mounts)."""
        children = subprocess.run(["pgrep", "-P", str(self.unshare.pid)], capture_output=True, text=True).stdout.split()
        if self.unshare.poll() is not None:
            raise AssertionError(f"the namespace did not boot: {self.unshare.returncode}")
        if not children or Path(f"/proc/{children[0]}/comm").read_text().strip() != "systemd":
            return None
        return int(children[0])

    def run(self, *argv: str, check: bool = True, input: str | None = None, env: dict | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run(["nsenter", "-t", str(self.pid), "-m", "-p", "--", *argv], capture_output=True,
                              text=True, input=input, env={**os.environ, **(env or {})}, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def write(self, path: str, text: str) -> None:
        self.run("sh", "-c", f"mkdir -p \"$(dirname '{path}')\" && cat > '{path}'", input=text)

    def show(self, unit: str, prop: str) -> str:
        return self.run("systemctl", "show", "-p", prop, "--value", unit).stdout.strip()

    def close(self) -> None:
        if self.unshare.poll() is None:  # its child, our pid, is still the namespace's PID 1
            os.kill(self.pid, 9)  # and everything in the namespace goes with it
        self.unshare.wait(timeout=30)


@pytest.fixture
def namespace(tmp_path):
    ns = Namespace(tmp_path)
    try:
        yield ns
    finally:
        ns.close()
        assert subprocess.run(["pgrep", "-f", f"{INSIDE}/ockam"], capture_output=True).stdout == b"", \
            "something of the namespace outlived it"


def echo(port: int, payload: bytes = b"through systemd") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
    return got


def works(port: int) -> bool:
    try:
        return echo(port) == b"through systemd"
    except OSError:
        return False


def test_the_unit_under_a_real_systemd(ockam, echo_target, namespace):
    unit = "ockam-edge.service"
    relay = free_port()
    ockam("node", "create", "r", "--tcp-listener-address", f"127.0.0.1:{relay}")
    ockam("node", "create", "c")
    inlet = free_port()
    ockam("tcp-inlet", "create", "--at", "c", "--from", f"127.0.0.1:{inlet}",
          "--to", "/node/r/service/forward_to_edge/service/outlet", "--alias", "edge")

    # install: unit, topology and environment file written, started; `start` returns on READY=1
    namespace.write(f"{INSIDE}/edge.toml", TOPOLOGY)
    namespace.write(f"/etc/systemd/system/{unit}.d/test.conf", DROP_IN)
    namespace.run(f"{INSIDE}/ockam", "service", "install", "--config", f"{INSIDE}/edge.toml",
                  env={"RELAY_PORT": str(relay), "TARGET_PORT": str(echo_target), "OCKAM_HOME": f"{INSIDE}/home"})
    assert namespace.show(unit, "ActiveState") == "active" and namespace.show(unit, "Type") == "notify"
    assert namespace.show(unit, "StatusText").startswith("listening on 127.0.0.1:")  # sent with READY=1
    wait_until(lambda: works(inlet), timeout=20, what="the portal through the service")

    # reload: an edited topology applied without a restart
    pid = namespace.show(unit, "MainPID")
    extra = free_port()
    namespace.write("/etc/ockam/edge.toml", TOPOLOGY + f'\n[[inlets]]\nfrom = "127.0.0.1:{extra}"\n'
                                                      'to = "/service/outlet"\n')
    namespace.run("systemctl", "reload", unit)
    wait_until(lambda: works(extra), timeout=15, what="the inlet the reload added")
    assert namespace.show(unit, "MainPID") == pid and works(inlet)

    # the node pings the watchdog (the one-file binary's child, not the main PID, sends them)...
    pings = {namespace.show(unit, "WatchdogTimestampMonotonic")}
    wait_until(lambda: pings.add(namespace.show(unit, "WatchdogTimestampMonotonic")) or len(pings) >= 3,
               timeout=10, interval=0.2, what="two watchdog pings")
    assert namespace.show(unit, "NRestarts") == "0"
    # ...and a node that stops answering is restarted by the watchdog
    namespace.run("systemctl", "kill", "--signal=SIGSTOP", unit)
    wait_until(lambda: namespace.show(unit, "NRestarts") == "1", timeout=30, what="the watchdog to restart it")
    wait_until(lambda: namespace.show(unit, "ActiveState") == "active", timeout=30, what="it to be back")
    wait_until(lambda: works(inlet), timeout=30, what="the portal after the restart")
    journal = namespace.run("journalctl", "-u", unit, "--no-pager", "-o", "cat").stdout  # systemd's lines too
    assert f"{unit}: Watchdog timeout" in journal, journal[-3000:]

    # the dynamic user, its state directory and the read-only rest of the system
    node_pid = namespace.run("pgrep", "-f", "-n", "node run /etc/ockam/edge.toml").stdout.split()[0]
    uid = int(namespace.run("stat", "-c", "%u", f"/proc/{node_pid}").stdout)
    assert uid in DYNAMIC_UIDS
    owner, mode = namespace.run("stat", "-c", "%u %a", "/var/lib/private/ockam").stdout.split()
    assert (int(owner), mode) == (uid, "700")
    mounts = namespace.run("cat", f"/proc/{node_pid}/mountinfo").stdout.splitlines()
    options = {line.split()[4]: line.split()[5] for line in mounts}
    assert options["/"].startswith("ro") and options["/var/lib/private/ockam"].startswith("rw"), options

    # stop: the node drains and exits cleanly; its log is in the journal
    namespace.run("systemctl", "stop", unit)
    assert namespace.show(unit, "ActiveState") == "inactive" and namespace.show(unit, "Result") == "success"
    journal = namespace.run("journalctl", "-u", unit, "--no-pager", "-o", "cat").stdout
    for line in ("node edge is up, listening on", "relay forward_to_edge registered at", "reloaded /etc/ockam/edge.toml",
                 "node edge stopping (grace", "node edge stopped"):
        assert line in journal, journal[-3000:]
    # under systemd the log is the journal only: no file of its own to rotate and fill the disk
    assert namespace.run("find", "/var/lib/private/ockam", "-name", "*.log").stdout == ""
    assert not works(inlet)
