"""Loopback helpers shared by the benchmark modules."""

from __future__ import annotations

import os
import socket
import subprocess
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine (every process: the relays, the target, the
    client), so that CPU per request covers the whole path whatever its processes are."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pids) -> tuple:
    """(user, kernel) CPU seconds of the processes `pids` and of their children so far: the
    children alive, and those gone and reaped (socat forks one per connection)."""
    user = kernel = 0
    for pid in descendants(pids):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11]) + int(fields[13])  # utime, cutime
        kernel += int(fields[12]) + int(fields[14])  # stime, cstime
    tick = os.sysconf("SC_CLK_TCK")
    return user / tick, kernel / tick


def descendants(pids) -> set:
    """`pids` and every process below them (sshd forks a process per session)."""
    found, todo = set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    todo.extend(int(child) for child in f.read().split())
        except OSError:
            continue
    return found


def reap(proc: subprocess.Popen, timeout: float) -> None:
    """Wait for a process that was told to stop; kill it if it has not within `timeout` s."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
