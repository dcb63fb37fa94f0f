"""The Windows service adapter, run on Linux against fake pywin32 modules.

The fakes record what the adapter asks of the service manager; the service itself runs a
real node (in a thread, as the service manager would) and is stopped from another thread.
"""

import socket
import subprocess
import sys
import threading
import time
import types

import pytest

from appliance.host import process
from tests.helpers import free_port, wait_until


class FakeServiceFramework:
    """As pywin32's: its SvcRun reports RUNNING before SvcDoRun and STOP_PENDING after it."""

    def __init__(self, args):
        self.args = args
        self.ssh = self  # the status handle: SetServiceStatus reports on it, as on ReportServiceStatus
        self.statuses = []
        self.exit_codes = (0, 0)

    def ReportServiceStatus(self, status, waitHint=5000, win32ExitCode=0, svcExitCode=0):
        self.statuses.append(status)
        self.exit_codes = (win32ExitCode, svcExitCode)

    def report_accepting(self, status):
        self.statuses.append(status[1])
        self.accepted_while_starting = status[2]

    def SvcRun(self):
        self.ReportServiceStatus(4)
        self.SvcDoRun()
        self.ReportServiceStatus(3)


class Calls(list):
    states: list
    refused: set  # the levels of ChangeServiceConfig2 this service manager lacks (Wine: 4)


class FakeWindowsError(Exception):
    """pywintypes.error: (winerror, funcname, strerror)."""

    def __init__(self, winerror, funcname, strerror):
        super().__init__(winerror, funcname, strerror)
        self.winerror, self.funcname, self.strerror = winerror, funcname, strerror


@pytest.fixture
def pywin32(monkeypatch):
    calls = Calls()
    win32service = types.SimpleNamespace(
        SERVICE_RUNNING=4, SERVICE_STOPPED=1, SERVICE_START_PENDING=2, SERVICE_STOP_PENDING=3,
        SERVICE_AUTO_START=2, SC_MANAGER_ALL_ACCESS=0xF003F, SERVICE_ALL_ACCESS=0xF01FF,
        SC_ACTION_RESTART=1, SERVICE_CONFIG_FAILURE_ACTIONS=2, SERVICE_CONFIG_FAILURE_ACTIONS_FLAG=4,
        SERVICE_WIN32_OWN_PROCESS=0x10, SERVICE_ACCEPT_STOP=1, SERVICE_ACCEPT_SHUTDOWN=4,
        SetServiceStatus=lambda handle, status: handle.report_accepting(status),
        OpenSCManager=lambda *a: calls.append(("OpenSCManager",)) or "scm",
        OpenService=lambda *a: calls.append(("OpenService", a[1])) or "svc",
        ChangeServiceConfig2=lambda handle, level, info: _change_config(calls, level, info),
        CloseServiceHandle=lambda h: None)
    win32serviceutil = types.SimpleNamespace(
        ServiceFramework=FakeServiceFramework,
        InstallService=lambda cls, name, display, **kw: calls.append(("InstallService", name, kw)),
        SetServiceCustomOption=lambda name, key, value: calls.append(("Option", name, key, value)),
        StartService=lambda name: calls.append(("StartService", name)),
        StopService=lambda name: calls.append(("StopService", name)) or states.append(1),  # stops at once
        RemoveService=lambda name: calls.append(("RemoveService", name)),
        QueryServiceStatus=lambda name: (16, states[-1], 0))
    states = [4]  # what QueryServiceStatus reports: running, unless a test says otherwise
    servicemanager = types.SimpleNamespace(
        LogInfoMsg=lambda msg: calls.append(("Log", msg)),
        LogErrorMsg=lambda msg: calls.append(("LogError", msg)),
        Initialize=lambda: calls.append(("Initialize",)),
        PrepareToHostSingle=lambda cls: calls.append(("Host", cls._svc_name_)),
        StartServiceCtrlDispatcher=lambda: calls.append(("Dispatch",)))
    pywintypes = types.SimpleNamespace(error=FakeWindowsError)
    for name, module in (("win32service", win32service), ("win32serviceutil", win32serviceutil),
                         ("servicemanager", servicemanager), ("pywintypes", pywintypes)):
        monkeypatch.setitem(sys.modules, name, module)
    calls.states = states
    calls.refused = set()
    return calls


def _change_config(calls: Calls, level: int, info) -> None:
    if level in calls.refused:
        raise FakeWindowsError(124, "ChangeServiceConfig2", "Invalid level.")
    calls.append(("FailureActions", info["Actions"]) if level == 2 else ("FailureActionsFlag", info))


@pytest.fixture
def topology(tmp_path, monkeypatch):
    monkeypatch.setenv("OCKAM_HOME", str(tmp_path / "home"))
    inlet = free_port()
    path = tmp_path / "win.toml"
    path.write_text(f'[node]\nname = "win"\n\n[demo]\nhttp = "127.0.0.1:{free_port()}"\n\n'
                    f'[[outlets]]\nto = "127.0.0.1:{free_port()}"\n\n'
                    f'[[inlets]]\nfrom = "127.0.0.1:{inlet}"\nto = "/service/outlet"\n')
    return path, inlet


def test_install_registers_the_service_with_restart_on_failure(pywin32, topology, tmp_path):
    from appliance.host import service_windows

    path, _ = topology
    result = service_windows.install(str(path), None, start=True)
    assert result["service"] == "ockam-win"
    (install,) = [c for c in pywin32 if c[0] == "InstallService"]
    assert install[1] == "ockam-win" and install[2]["startType"] == 2
    home = str(tmp_path / "home")
    assert install[2]["exeArgs"] == subprocess.list2cmdline(
        [*process.SAFE_PATH, "-m", "appliance", "service", "run", "--config", str(path), "--name", "win", "--home", home])
    assert result["home"] == home
    assert ("FailureActions", [(1, 2000)] * 3) in pywin32 and ("FailureActionsFlag", True) in pywin32
    assert ("StartService", "ockam-win") in pywin32
    assert service_windows.status("win") == {"service": "ockam-win", "state": "running"}
    service_windows.uninstall("win")
    assert ("RemoveService", "ockam-win") in pywin32


@pytest.mark.parametrize("unix_sockets", [True, False], ids=["with-af-unix", "like-windows"])
def test_service_runs_the_node_and_stops_from_the_manager_thread(pywin32, topology, monkeypatch, unix_sockets):
    from appliance.cli import client
    from appliance.host import control, service_windows

    if not unix_sockets:  # CPython on Windows has no AF_UNIX: the control API is on loopback TCP
        monkeypatch.delattr(control.socket, "AF_UNIX")

    path, inlet = topology
    cls = service_windows.service_class(str(path), "win")
    service = cls(["ockam-win"])
    runner = threading.Thread(target=service.SvcRun)
    runner.start()
    try:
        assert service.node_created.wait(15)
        assert service.node.ready.wait(15)
        wait_until(lambda: _port_open(inlet), what="the service's inlet")
        wait_until(lambda: 4 in service.statuses, what="RUNNING, once the node is ready")
        assert client.call("win", "node.show")["name"] == "win"  # the CLI reaches it either way
        assert control.endpoint("win").family == ("unix" if unix_sockets else "tcp")
        service.SvcStop()  # from this thread, as the service manager's handler thread would
        runner.join(timeout=30)
        assert not runner.is_alive(), "the node must stop when the service manager asks"
    finally:
        if runner.is_alive():
            service.node.request_stop()
            runner.join(timeout=10)
    assert service.statuses == [2, 4, 3]  # start pending, running once ready, then stop pending
    assert not _port_open(inlet)


def test_dispatcher_is_handed_the_service(pywin32, topology):
    from appliance.host import service_windows

    path, _ = topology
    service_windows.run(str(path), "win")
    assert [c[0] for c in pywin32[-3:]] == ["Initialize", "Host", "Dispatch"]


def test_without_pywin32_the_error_is_clear(monkeypatch, topology):
    from appliance.host import service_windows
    from appliance.host.state import StateError

    monkeypatch.setitem(sys.modules, "win32service", None)
    with pytest.raises(StateError, match="need pywin32"):
        service_windows.install(str(topology[0]), None)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_bad_topology_stops_the_service_with_its_reason(pywin32, topology):
    from appliance.host import service_windows

    path, _ = topology
    path.write_text('[node]\nname = "win"\nbogus = 1\n')
    service = service_windows.service_class(str(path), "win")(["ockam-win"])
    exits = []
    service.exit_process = exits.append  # the real one ends the process: nothing reports over our STOPPED
    service.SvcRun()
    assert service.statuses == [2, 1] and service.exit_codes == (service_windows.ERROR_SERVICE_SPECIFIC_ERROR, 2)
    assert exits == [2]
    (error,) = [c[1] for c in pywin32 if c[0] == "LogError"]
    assert error.startswith("ockam-win: cannot run: ") and "node.bogus: unknown key" in error
    started = time.monotonic()
    service.SvcStop()  # the service manager may still ask: it must not wait for a node that never came
    assert time.monotonic() - started < 1


def test_install_refuses_a_bad_topology_and_reports_a_start_that_fails(pywin32, topology, monkeypatch):
    from appliance.config.topology import ConfigError
    from appliance.host import service_windows
    from appliance.host.state import StateError

    path, _ = topology
    monkeypatch.setattr(service_windows, "START_TIMEOUT", 0.3)
    pywin32.states.append(2)  # start pending, for ever
    with pytest.raises(StateError, match="did not report running within 0.3 s"):
        service_windows.install(str(path), None, start=True)
    pywin32.states.append(1)  # stopped as it started
    with pytest.raises(StateError, match="stopped as it started"):
        service_windows.install(str(path), None, start=True)
    path.write_text('[node]\nname = "win"\n[[inlets]]\nfrom = "nowhere"\n')
    with pytest.raises(ConfigError, match="inlets"):
        service_windows.install(str(path), None, start=True)


def test_a_service_manager_without_the_failure_flag_level_still_installs(pywin32, topology):
    """Wine's lacks SERVICE_CONFIG_FAILURE_ACTIONS_FLAG: restarts after a crash only, and says so."""
    from appliance.host import service_windows

    pywin32.refused.add(4)
    result = service_windows.install(str(topology[0]), None, start=True)
    assert result["restarts_on_error_exit"] is False and result["started"] is True
    assert ("FailureActions", [(1, 2000)] * 3) in pywin32
    assert ("RemoveService", "ockam-win") not in pywin32


def test_a_failed_install_leaves_no_service_behind(pywin32, topology):
    from appliance.host import service_windows
    from appliance.host.state import StateError

    pywin32.states.append(1)  # stopped as it started
    with pytest.raises(StateError, match="stopped as it started"):
        service_windows.install(str(topology[0]), None, start=True)
    assert pywin32[-1] == ("RemoveService", "ockam-win") and ("StopService", "ockam-win") not in pywin32


def test_a_service_still_starting_is_asked_to_stop_until_it_can_and_then_removed(pywin32, topology, monkeypatch):
    """While it starts, a service may refuse Stop (1061): uninstall asks again, waits for
    STOPPED, and only then removes it; one that never stops is not removed, and said so."""
    from appliance.host import service_windows

    monkeypatch.setattr(service_windows.time, "sleep", lambda s: None)
    answers = iter([FakeWindowsError(1061, "ControlService", "The service cannot accept control messages "
                                                                "at this time."), None])

    def stop(name):
        answer = next(answers)
        if answer is not None:
            raise answer
        pywin32.append(("StopService", name))
        pywin32.states.extend([3, 1])  # stop pending, then stopped

    monkeypatch.setattr(sys.modules["win32serviceutil"], "StopService", stop)
    pywin32.states[:] = [2]  # start pending
    assert service_windows.uninstall("win") == {"removed": "ockam-win"}
    assert [c[0] for c in pywin32[-2:]] == ["StopService", "RemoveService"]

    pywin32.states[:] = [3]  # stop pending, for ever
    monkeypatch.setattr(service_windows, "STOP_TIMEOUT", 0)
    with pytest.raises(service_windows.ServiceError, match="did not stop within 0 s .state 3.; it was not removed"):
        service_windows.uninstall("win")


def test_the_service_manager_refusing_is_one_line(pywin32, topology, monkeypatch):
    from appliance.host import service_windows

    def refuse(*_args, **_kwargs):
        raise FakeWindowsError(5, "OpenSCManager", "Access is denied.")

    monkeypatch.setattr(sys.modules["win32serviceutil"], "InstallService", refuse)
    with pytest.raises(service_windows.ServiceError) as raised:
        service_windows.install(str(topology[0]), None, start=True)
    assert str(raised.value) == "service ockam-win: OpenSCManager: Access is denied"


def test_an_install_over_a_service_of_that_name_leaves_that_service_alone(pywin32, topology, monkeypatch):
    from appliance.host import service_windows

    def exists(*_args, **_kwargs):
        raise FakeWindowsError(1073, "CreateService", "The specified service already exists.")

    monkeypatch.setattr(sys.modules["win32serviceutil"], "InstallService", exists)
    with pytest.raises(service_windows.ServiceError,
                       match=r"^service ockam-win: it is installed already \(ockam service uninstall --name win\)$"):
        service_windows.install(str(topology[0]), None, start=True)
    assert not [c for c in pywin32 if c[0] in ("StopService", "RemoveService")]
