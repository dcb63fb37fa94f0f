"""A Wine prefix driven from Linux: boot it, run Windows programs in it, bound every call.

Shared by `make binary-windows` (build.py, beside this file) and `make test-windows`
(tests/windows). Standard library only. The pitfalls it exists for are in
../shared/design/windows-under-wine.md: a Windows CPython dies when its standard handles are
regular files, so every call gets /dev/null for input and pipes for output; a background
process started by a Windows program keeps those pipes open, so a call ends when its
process exits, not when its output does; and services live only as long as one persistent
wineserver, which must be started after the prefix exists.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from pathlib import Path, PurePosixPath

OUTPUT_GRACE = 0.3  # seconds to keep reading after the process exited (what it wrote last)
BOOT_TIMEOUT = 180.0


class WineError(RuntimeError):
    """A Wine call that failed or did not finish in time."""


class Result:
    def __init__(self, args: list[str], returncode: int, stdout: bytes, stderr: bytes):
        self.args, self.returncode = args, returncode
        self.stdout = stdout.decode("utf-8", "replace").replace("\r\n", "\n")
        self.stderr = stderr.decode("utf-8", "replace").replace("\r\n", "\n")

    def check(self) -> "Result":
        if self.returncode != 0:
            raise WineError(f"{' '.join(self.args)} exited with {self.returncode}: {self.stderr.strip()[-2000:]}")
        return self


def windows_path(path) -> str:
    """The Windows name of a Linux path: Wine maps / to drive Z:."""
    return "Z:" + str(PurePosixPath(os.path.abspath(path))).replace("/", "\\")


class Prefix:
    """One WINEPREFIX folder with its own wineserver."""

    def __init__(self, path, windows_version: str = "win10"):
        self.path = Path(path).absolute()
        self.windows_version = windows_version

    def env(self, extra: dict | None = None) -> dict:
        env = {key: value for key, value in os.environ.items() if not key.startswith("WINE")}
        env.update(WINEPREFIX=str(self.path), WINEARCH="win64", WINEDEBUG="-all",
                   WINEDLLOVERRIDES="mscoree,mshtml=")
        env.update(extra or {})
        return env

    def _quiet(self, args: list[str], timeout: float) -> None:
        """A Wine tool whose output nobody reads: /dev/null everywhere, so that no process it
        leaves running (services.exe, the wineserver) holds a pipe of ours."""
        try:
            code = subprocess.run(args, env=self.env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            raise WineError(f"{' '.join(args)} did not finish within {timeout:g} s") from None
        if code != 0:
            raise WineError(f"{' '.join(args)} exited with {code}")

    def boot(self) -> None:
        """Create the prefix if needed and start its persistent wineserver (and service
        manager) in the only order that leaves one services.exe: a first `wineboot --init`
        under a short-lived server, then `wineserver -p`, then `wineboot`."""
        if not (self.path / "system.reg").exists():
            self.path.mkdir(parents=True, exist_ok=True)
            self._quiet(["wineboot", "--init"], BOOT_TIMEOUT)
            self._quiet(["wineserver", "-w"], BOOT_TIMEOUT)
            self._quiet(["wine", "winecfg", "/v", self.windows_version], 60)
            self._quiet(["wineserver", "-w"], BOOT_TIMEOUT)
        self._quiet(["wineserver", "-p"], 30)
        self._quiet(["wineboot"], BOOT_TIMEOUT)

    def shutdown(self) -> None:
        """Every process of this prefix, and its wineserver, ended (called from cleanups: it
        never raises; a server that would not end is killed with the processes it leaves)."""
        for args in (["wineserver", "-k"], ["wineserver", "-w"]):
            try:
                subprocess.run(args, env=self.env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=60, check=False)
            except (OSError, subprocess.TimeoutExpired):
                pass
        for pid in self.processes(""):
            try:
                os.kill(pid, 9)
            except OSError:
                pass

    def restart(self) -> None:
        """A clean slate for the next test: every process ended, a fresh service manager."""
        self.shutdown()
        self.boot()

    def processes(self, name: str) -> list[int]:
        """The Linux pids of this prefix's live processes whose command line names `name`
        (what /proc shows: a Windows process under Wine is a Linux process too)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
                environ = (entry / "environ").read_bytes().split(b"\0")
                zombie = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
            except OSError:
                continue
            if name.encode() in cmdline and f"WINEPREFIX={self.path}".encode() in environ and not zombie:
                pids.append(int(entry.name))
        return pids

    def run(self, program, *args: str, timeout: float = 60, env: dict | None = None,
            cwd=None) -> Result:
        """Run a Windows program to its end and return what it wrote; WineError after
        `timeout` (the program is killed). Its output is read until it exits and a moment
        longer, not until the pipes close: background processes it started hold them."""
        argv = ["wine", str(program), *args]
        proc = subprocess.Popen(argv, env=self.env(env), cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stdout, stderr = bytearray(), bytearray()
        buffers = {proc.stdout.fileno(): stdout, proc.stderr.fileno(): stderr}
        open_fds = set(buffers)
        deadline = time.monotonic() + timeout
        exited_at = None
        try:
            while open_fds:
                readable, _, _ = select.select(list(open_fds), [], [], 0.05)
                for fd in readable:
                    chunk = os.read(fd, 65536)
                    if chunk:
                        buffers[fd] += chunk
                    else:
                        open_fds.discard(fd)
                now = time.monotonic()
                if exited_at is None and proc.poll() is not None:
                    exited_at = now
                if exited_at is not None and now - exited_at > OUTPUT_GRACE:
                    break  # a background child may go on writing into the pipe it inherited
                if now > deadline:
                    proc.kill()
                    proc.wait()
                    raise WineError(f"{' '.join(argv)} did not finish within {timeout:g} s")
        finally:
            proc.stdout.close()
            proc.stderr.close()
        return Result(argv, proc.wait(), bytes(stdout), bytes(stderr))


def wine_available() -> bool:
    return shutil.which("wine") is not None and shutil.which("wineserver") is not None
