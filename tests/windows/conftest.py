"""`make test-windows`: dist/ockam.exe driven under Wine from this Linux side.

One Wine prefix for the session (booted in about 10 s), restarted after every test (every
Windows process of the test ended, a fresh service manager: about 1 s), and each test with
its own OCKAM_HOME; services a test installs are removed after it. Every Wine call is
bounded by a timeout. Skipped unless OCKAM_EXE names the exe (the Makefile sets it).
Linux nodes, where a test mixes the two, come from the e2e fixtures.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import echo_target, http_server, ockam, tap, threaded_server  # noqa: F401 - fixtures

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "packaging" / "windows"))
from wineprefix import Prefix, WineError, wine_available, windows_path  # noqa: E402

EXE = os.environ.get("OCKAM_EXE")
SKIP_REASON = "set OCKAM_EXE to dist/ockam.exe and install Wine (make test-windows)"


def pytest_collection_modifyitems(config, items):
    if EXE and wine_available():
        return
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


@pytest.fixture(scope="session")
def prefix():
    folder = tempfile.mkdtemp(prefix="ockam-wine-")
    wine = Prefix(folder)
    wine.boot()
    yield wine
    wine.shutdown()
    shutil.rmtree(folder, ignore_errors=True)


class WindowsOckam:
    """ockam.exe with its own OCKAM_HOME, as `tests.e2e.conftest.Ockam` is the Linux CLI."""

    def __init__(self, wine: Prefix, home: Path):
        self.wine = wine
        self.home = home
        self.env = {"OCKAM_HOME": windows_path(home)}
        self.services: list[str] = []  # names installed, removed after the test

    def use_home(self, home: Path) -> None:
        """OCKAM_HOME elsewhere (a path inside the prefix's drive C:, written as Windows does)."""
        self.home = home
        drive_c = self.wine.path / "drive_c"
        self.env = {"OCKAM_HOME": "C:\\" + str(home.relative_to(drive_c)).replace("/", "\\")
                    if home.is_relative_to(drive_c) else windows_path(home)}

    def run(self, *args: str, check: bool = True, timeout: float = 90):
        result = self.wine.run(os.path.abspath(EXE), *args, env=self.env, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"ockam.exe {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def __call__(self, *args: str, **kwargs) -> str:
        return self.run(*args, **kwargs).stdout.strip()

    def install(self, config: Path, *args: str):
        name = re.search(r'name = "([^"]+)"', config.read_text()).group(1)
        self.services.append(name)
        return self.run("service", "install", "--config", windows_path(config), *args, check=False)

    def service_state(self, name: str) -> dict:
        """What `sc query` says of ockam-NAME: state, win32_exit_code, service_exit_code (ints)."""
        text = self.wine.run("sc", "query", f"ockam-{name}", timeout=30).stdout
        fields = dict(re.findall(r"^\s*(STATE|WIN32_EXIT_CODE|SERVICE_EXIT_CODE)\s*:\s*(\d+)", text, re.M))
        return {key.lower(): int(value) for key, value in fields.items()}

    def node_processes(self) -> list[int]:
        return self.wine.processes("ockam.exe")


@pytest.fixture
def windows(prefix):
    home = Path(tempfile.mkdtemp(prefix="ockam-win-"))
    cli = WindowsOckam(prefix, home)
    yield cli
    try:
        for name in cli.services:
            _remove_service(cli, name)
        cli.run("node", "delete", "--all", check=False, timeout=60)
    except (WineError, AssertionError):
        pass  # the restart below ends whatever is left
    finally:
        prefix.restart()  # nothing of this test may outlive it
        shutil.rmtree(home, ignore_errors=True)
    for name in cli.services:
        assert cli.service_state(name) == {}, f"service ockam-{name} outlived its test"


def _remove_service(cli: WindowsOckam, name: str) -> None:
    """sc stop, until STOPPED (bounded), then sc delete: a service the test left behind."""
    cli.wine.run("sc", "stop", f"ockam-{name}", timeout=30)
    deadline = time.monotonic() + 20
    while cli.service_state(name).get("state", 1) != 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    cli.wine.run("sc", "delete", f"ockam-{name}", timeout=30)


__all__ = ["WindowsOckam", "windows_path"]
