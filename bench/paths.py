"""The paths traffic can take to a target port, each a context manager yielding a Path.

Every path forwards 127.0.0.1:<port> to 127.0.0.1:<target>; the same clients then measure
each one, so only the path differs between rows. `pids` names the processes that carry
the traffic (for memory measurements).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path as FsPath
from typing import NamedTuple

from appliance.host.process import self_command
from bench.net import free_port, reap, wait_for_port


class Path(NamedTuple):
    port: int
    pids: dict  # hop name -> pid
    movers: tuple = ()  # every process that moves the traffic, when `pids` is not all of them

    def cpu_pids(self) -> tuple:
        """The processes whose CPU (with their children's) is the path's."""
        return self.movers or tuple(self.pids.values())


def ockam_command() -> list[str]:
    script = FsPath(sys.executable).parent / "ockam"
    return [str(script)] if script.exists() else self_command()


@contextlib.contextmanager
def direct(target: int):
    yield Path(target, {})


@contextlib.contextmanager
def socat(target: int):
    if shutil.which("socat") is None:
        raise RuntimeError("socat is not installed")
    port = free_port()
    proc = subprocess.Popen(["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr,backlog=4096",
                             f"TCP:127.0.0.1:{target}"], stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield Path(port, {"socat": proc.pid})
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def openssh_chain(target: int):
    """The classic way through NAT: sshd as the bastion, `ssh -R` from the service side,
    `ssh -L` from the client side (encrypted per hop; the bastion sees plaintext)."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(sshd) or shutil.which("ssh") is None:
        raise RuntimeError("OpenSSH (sshd, ssh) is not installed")
    tmp = tempfile.mkdtemp(prefix="bench-ssh-")
    key, host_key = os.path.join(tmp, "id"), os.path.join(tmp, "host")
    for path in (key, host_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True)
    shutil.copy(key + ".pub", os.path.join(tmp, "authorized_keys"))
    os.makedirs("/run/sshd", exist_ok=True)
    port, remote, local = free_port(), free_port(), free_port()
    config = os.path.join(tmp, "sshd_config")
    with open(config, "w") as f:
        f.write(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {tmp}/sshd.pid\n"
                f"AuthorizedKeysFile {tmp}/authorized_keys\nPasswordAuthentication no\nUsePAM no\n"
                "PermitRootLogin prohibit-password\nStrictModes no\nAllowTcpForwarding yes\n"
                "MaxSessions 100\nMaxStartups 100\n")
    client = ["ssh", "-N", "-p", str(port), "-i", key, "-o", "StrictHostKeyChecking=no",
              "-o", "UserKnownHostsFile=/dev/null", "-o", "ExitOnForwardFailure=yes", "-o", "LogLevel=ERROR"]
    user = f"{os.environ.get('USER') or 'root'}@127.0.0.1"
    procs = []
    try:
        procs.append(subprocess.Popen([sshd, "-D", "-e", "-f", config], stderr=subprocess.DEVNULL))
        wait_for_port(port)
        procs.append(subprocess.Popen(client + ["-R", f"127.0.0.1:{remote}:127.0.0.1:{target}", user]))
        wait_for_port(remote)
        procs.append(subprocess.Popen(client + ["-L", f"127.0.0.1:{local}:127.0.0.1:{remote}", user]))
        wait_for_port(local)
        yield Path(local, {"ssh -L": procs[2].pid, "ssh -R": procs[1].pid}, tuple(p.pid for p in procs))
    finally:  # every one of them, even when one does not stop in time (it is killed)
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            reap(proc, 10)
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def ockam_relay_portal(target: int, secure: bool = False, udp: bool = False):
    """inlet (n1) -> relay (n2) <- outlet (n3, dialled out): three node processes; with
    `secure`, end-to-end encrypted n1 <-> n3 through the relay; with `udp`, a UDP portal."""
    home = tempfile.mkdtemp(prefix="ockam-bench-", dir="/tmp")
    env = {**os.environ, "OCKAM_HOME": home}

    def ockam(*args: str) -> str:
        return subprocess.run(ockam_command() + list(args), env=env, check=True,
                              capture_output=True, text=True).stdout.strip()

    port = free_port()
    try:
        ockam("node", "create", "n2", "--tcp-listener-address=127.0.0.1:0")  # the relay
        ockam("node", "create", "n3")
        ockam("relay", "create", "n3", "--at", "/node/n2", "--to", "n3")
        ockam("node", "create", "n1")
        kind = "udp" if udp else "tcp"
        ockam(f"{kind}-outlet", "create", "--at", "n3", "--to", f"127.0.0.1:{target}", "--from", "/service/outlet")
        ockam(f"{kind}-inlet", "create", "--at", "n1", "--from", f"127.0.0.1:{port}",
              "--to", f"/node/n2/service/forward_to_n3{'/secure/api' if secure else ''}/service/outlet")
        import json

        pids = {f"{role} ({node})": json.loads(ockam("node", "show", node, "--output", "json"))["pid"]
                for role, node in (("inlet", "n1"), ("relay", "n2"), ("outlet", "n3"))}
        yield Path(port, pids)
    finally:
        subprocess.run(ockam_command() + ["node", "delete", "--all"], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


PATHS = {
    "direct": direct,
    "socat": socat,
    "openssh chain": openssh_chain,
    "ockam portal (plain)": ockam_relay_portal,
    "ockam portal (encrypted)": functools.partial(ockam_relay_portal, secure=True),
}
