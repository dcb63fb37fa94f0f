"""Background nodes: spawn this same program detached, wait until it answers, stop it.

Works the same from source (`python -m appliance`) and frozen by PyInstaller, where
`sys.executable` is the `ockam` binary itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import appliance
from appliance.errors import ApplianceError
from appliance.host import state

READY_TIMEOUT = 15.0
BACKGROUND_ENV = "OCKAM_BACKGROUND_NODE"  # set for spawned nodes: their stderr is the log file
STOP_TIMEOUT = 15.0  # a node drains open portal connections for 10 s (runner.DEFAULT_GRACE), then stops
SERVICE_ENVIRONMENT = ("JOURNAL_STREAM", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")  # a unit's, not a child's
PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
STILL_ACTIVE = 259


class ProcessError(ApplianceError):
    """A node process that would not start or stop."""


SAFE_PATH = ["-P"] if sys.version_info >= (3, 11) else []  # see self_command


def self_command() -> list[str]:
    """This program as a command. From source, `python -m` would put the working directory
    first on the module path: a node started from a folder that holds an `appliance`
    package would run that code instead of ours. `-P` (Python 3.11+) keeps it off."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, *SAFE_PATH, "-m", "appliance"]


def child_environment() -> dict:
    """A background node's: not the service manager's variables of the process that started
    it (its log is its own file, it is nobody's watchdog)."""
    env = {key: value for key, value in os.environ.items() if key not in SERVICE_ENVIRONMENT}
    env[BACKGROUND_ENV] = "1"
    if not getattr(sys, "frozen", False):
        # our own code first (self_command keeps the working directory off the path): a
        # checkout run as `python -m appliance` is not installed anywhere else, and another
        # installed `appliance` must not be what the node runs
        root = str(Path(appliance.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    if getattr(sys, "frozen", False):
        # A onefile child would otherwise reuse our extraction directory, which is deleted
        # when this CLI exits; the node must unpack its own copy (PyInstaller >= 6.9).
        env["PYINSTALLER_RESET_ENVIRONMENT"] = "1"
    return env


def spawn_node(name: str, args: list[str], is_ready) -> int:
    """Start `ockam node create NAME --foreground ARGS` detached; return its pid once ready.

    `is_ready()` is polled until it returns True; a child that exits first is reported
    with the last line it logged (for example a busy port)."""
    log = state.log_path(name)
    log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(log, "ab") as out:
        child = subprocess.Popen(
            self_command() + ["node", "create", name, "--foreground", *args],
            env=child_environment(),
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, close_fds=True, **_detached())
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise ProcessError(last_error_line(log) or f"node {name} exited with code {child.returncode}")
        if is_ready():
            return child.pid
        time.sleep(0.05)
    child.kill()
    raise ProcessError(f"node {name} did not start within {READY_TIMEOUT:g} s (see {log})")


def _detached() -> dict:
    """A child that outlives this CLI and its terminal: its own session here; on Windows its
    own process group and no console window (CREATE_NO_WINDOW, not DETACHED_PROCESS: the
    one-file bootloader's child would then open a console of its own, and closing it kills
    the node; Ctrl+C here does not reach it)."""
    if os.name == "nt":
        return {"creationflags": subprocess.CREATE_NO_WINDOW | subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def last_error_line(log) -> str:
    try:
        lines = [l for l in log.read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return ""
    return lines[-1].split("Error: ", 1)[-1] if lines else ""


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    if os.name == "nt":
        return _alive_on_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _alive_on_windows(pid: int) -> bool:
    """os.kill(pid, 0) would send CTRL_C_EVENT there: ask for the exit code instead."""
    import ctypes

    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        return bool(kernel32.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def is_node_process(pid: int) -> bool:
    """Guard against pid reuse: the process must be an ockam node (`node create|run`)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return alive(pid)  # no /proc (not Linux): trust the pid file
    return b"node" in argv and (b"create" in argv or b"run" in argv)


def stop_process(pid: int, timeout: float = STOP_TIMEOUT, asked: bool = False) -> None:
    """SIGTERM (unless the node was `asked` to stop already, over its control channel: the
    only graceful way on Windows), then SIGKILL after `timeout`; returns once it is gone."""
    if not alive(pid) or not is_node_process(pid):
        return
    if not asked:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.05)
    os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))  # SIGTERM is TerminateProcess on Windows
