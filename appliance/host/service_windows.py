"""The Windows service adapter (pywin32): the same NodeService behind the service manager.

`ockam service install --config FILE` registers `ockam.exe service run --config FILE
--name NAME` as an auto-start service with restart-on-failure, starts it and waits until it
is RUNNING; the service manager starts that command, which hands control to
`StartServiceCtrlDispatcher`. The service reports RUNNING when the node is ready (its
topology up), and a node that cannot start stops the service with a service-specific
error code (2: a mistake in the topology, 1: anything else) and its reason in the Event
Log. Stop requests arrive on the service manager's thread and wake the gevent loop with a
thread-safe watcher (NodeService.request_stop). There is no SIGHUP: `ockam node reload`
reloads, over the node's control channel (host/control.py). pywin32 is imported only here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import threading
import time

from appliance.config import topology as topology_file
from appliance.errors import ApplianceError
from appliance.host.process import self_command
from appliance.host import state
from appliance.host.state import StateError

log = logging.getLogger(__name__)

RESTART_DELAY_MS = 2000
START_TIMEOUT = 60.0  # seconds `service install` waits for RUNNING
STOP_TIMEOUT = 15.0  # seconds `service uninstall` waits for STOPPED (open connections get 10 s)
ERROR_SERVICE_SPECIFIC_ERROR = 1066  # the service's own exit code says what went wrong
ERROR_SERVICE_CANNOT_ACCEPT_CTRL = 1061  # still starting (or already stopping)
ERROR_SERVICE_NOT_ACTIVE = 1062
ERROR_SERVICE_EXISTS = 1073
START_WAIT_HINT_MS = 60000  # what the service manager may wait for RUNNING


class ServiceError(StateError):
    """The service manager refused a step (not an administrator, a name in use, ...)."""


def _modules():
    try:
        import servicemanager
        import win32service
        import win32serviceutil
    except ImportError:
        raise StateError("Windows services need pywin32 (pip install pywin32)") from None
    return servicemanager, win32service, win32serviceutil


def service_class(config: str, name: str):
    """A ServiceFramework subclass that runs the node from `config`."""
    servicemanager, win32service, win32serviceutil = _modules()

    class OckamService(win32serviceutil.ServiceFramework):
        _svc_name_ = f"ockam-{name}"
        _svc_display_name_ = f"ockam-appliance node {name}"
        _svc_description_ = "Ockam relays and portals (ockam-appliance)"

        exit_process = staticmethod(os._exit)  # tests replace it

        def __init__(self, args):
            super().__init__(args)
            self.node = None
            self.node_created = threading.Event()  # set once SvcDoRun has a node, or failed to
            self._status = threading.Lock()  # RUNNING (when ready) and STOP_PENDING come from two threads
            self.stopping = False

        def SvcRun(self):
            """pywin32's SvcRun reports RUNNING before SvcDoRun, and its service_main reports a
            clean STOPPED after it returns (over any failure we report). So: START_PENDING,
            RUNNING from the node once it is ready, and after a failure our STOPPED with our
            code, then the process ends before anything can report over it."""
            self._report_starting()
            code = self.SvcDoRun()
            if code:
                self.exit_process(code)

        def _report_starting(self):
            """START_PENDING that accepts Stop: pywin32's accepts no control while starting,
            so a service whose node is slow to come up could be neither stopped nor removed."""
            win32service.SetServiceStatus(self.ssh, (
                win32service.SERVICE_WIN32_OWN_PROCESS, win32service.SERVICE_START_PENDING,
                win32service.SERVICE_ACCEPT_STOP | win32service.SERVICE_ACCEPT_SHUTDOWN, 0, 0, 0,
                START_WAIT_HINT_MS))

        def SvcStop(self):
            with self._status:
                self.stopping = True
                self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING)
            self.node_created.wait(25)  # under the service manager's 30 s for a control handler
            if self.node is not None:
                self.node.request_stop()

        def SvcDoRun(self) -> int | None:
            """Runs the node until it stops; the exit code of a failure, None after a stop."""
            from appliance.host.launch import file_node_service

            servicemanager.LogInfoMsg(f"{self._svc_name_}: starting from {config}")
            _log_to_node_file(name)
            try:
                self.node = file_node_service(config, log_to_stderr=False)
            except ApplianceError as exc:
                return self._failed(exc)
            finally:
                self.node_created.set()
            threading.Thread(target=self._running_when_ready, daemon=True).start()
            try:
                self.node.run()
            except ApplianceError as exc:  # a busy port, an identity it cannot read...
                return self._failed(exc)
            servicemanager.LogInfoMsg(f"{self._svc_name_}: stopped")
            return None

        def _running_when_ready(self):
            if not self.node.ready.wait():
                return
            with self._status:
                if self.stopping:
                    return
                self.ReportServiceStatus(win32service.SERVICE_RUNNING)
            servicemanager.LogInfoMsg(f"{self._svc_name_}: running")

        def _failed(self, exc: ApplianceError) -> int:
            """The reason in the Event Log and in the node's log (`ockam node logs NAME`)."""
            servicemanager.LogErrorMsg(f"{self._svc_name_}: cannot run: {exc}")
            log.error("%s: cannot run: %s", self._svc_name_, exc)
            self.ReportServiceStatus(win32service.SERVICE_STOPPED, win32ExitCode=ERROR_SERVICE_SPECIFIC_ERROR,
                                     svcExitCode=exc.exit_code)
            return exc.exit_code

    return OckamService


def _log_to_node_file(name: str) -> None:
    """The node's log file from the start, so that a topology it cannot read is told there too."""
    from appliance.host.runner import setup_logging

    with contextlib.suppress(OSError, StateError):
        state.node_dir(name).mkdir(mode=0o700, parents=True, exist_ok=True)
        setup_logging(name, 0, to_stderr=False)


def install(config: str, name: str | None, start: bool = True) -> dict:
    """Register, configure and (unless `start` is False) start the service; if any step
    fails, the service is removed again: an install either completes or leaves nothing."""
    config = os.path.abspath(config)  # the service manager starts it in the system folder
    spec = topology_file.load(config)
    name = name or spec.name
    if not name:
        raise StateError(f"{config}: node.name: missing (or pass --name)")
    state.check_name(name)
    _, win32service, win32serviceutil = _modules()
    cls = service_class(config, name)
    command = self_command()
    home = str(state.home())  # the service keeps its state where the installer's CLI finds it
    try:
        with _windows_errors(cls._svc_name_):
            _create(cls, win32service, win32serviceutil, command, config, name, home)
            win32serviceutil.SetServiceCustomOption(cls._svc_name_, "config", config)
            restarts_on_error_exit = _restart_on_failure(cls._svc_name_, win32service)
            if start:
                win32serviceutil.StartService(cls._svc_name_)
                _wait_running(cls._svc_name_, win32service, win32serviceutil)
    except ServiceExists:
        raise ServiceError(f"service {cls._svc_name_}: it is installed already "
                           f"(ockam service uninstall --name {name})") from None
    except BaseException:
        with contextlib.suppress(Exception):  # the first error is the one to tell
            _remove(cls._svc_name_, win32service, win32serviceutil)
        raise
    return {"service": cls._svc_name_, "config": config, "home": home, "started": start,
            "restarts_on_error_exit": restarts_on_error_exit}


def _create(cls, win32service, win32serviceutil, command: list, config: str, name: str, home: str) -> None:
    """CreateService (and its description): one that fails because the name is taken leaves
    the other service alone; any other failure removes what was created."""
    import pywintypes

    try:
        win32serviceutil.InstallService(
            None, cls._svc_name_, cls._svc_display_name_, description=cls._svc_description_,
            startType=win32service.SERVICE_AUTO_START, exeName=command[0],  # pywin32 quotes it
            exeArgs=subprocess.list2cmdline(command[1:] + ["service", "run", "--config", config, "--name", name,
                                                           "--home", home]))
    except pywintypes.error as exc:
        if exc.winerror == ERROR_SERVICE_EXISTS:
            raise ServiceExists(exc) from None
        raise


class ServiceExists(Exception):
    """Install found the name taken: that service is not ours to remove."""


@contextlib.contextmanager
def _windows_errors(service: str):
    """pywin32's errors as one line a user can act on (an administrator's shell, a name in use)."""
    import pywintypes

    try:
        yield
    except pywintypes.error as exc:
        raise ServiceError(f"service {service}: {exc.funcname}: {exc.strerror.rstrip('.')}") from None


def _remove(service: str, win32service, win32serviceutil) -> None:
    """Stop it and wait for STOPPED (open portal connections get their drain), then remove
    it; a service that will not stop within STOP_TIMEOUT is left registered, and said so."""
    import pywintypes

    deadline = time.monotonic() + STOP_TIMEOUT
    asked = False
    while (current := win32serviceutil.QueryServiceStatus(service)[1]) != win32service.SERVICE_STOPPED:
        if time.monotonic() >= deadline:
            raise ServiceError(f"service {service} did not stop within {STOP_TIMEOUT:g} s (state {current}); "
                               "it was not removed")
        if not asked and current != win32service.SERVICE_STOP_PENDING:
            try:
                win32serviceutil.StopService(service)
                asked = True
            except pywintypes.error as exc:
                if exc.winerror != ERROR_SERVICE_CANNOT_ACCEPT_CTRL:  # not active: stopped meanwhile
                    if exc.winerror != ERROR_SERVICE_NOT_ACTIVE:
                        raise
        time.sleep(0.2)
    win32serviceutil.RemoveService(service)


def _wait_running(service: str, win32service, win32serviceutil) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        current = win32serviceutil.QueryServiceStatus(service)[1]
        if current == win32service.SERVICE_RUNNING:
            return
        if current == win32service.SERVICE_STOPPED:
            raise StateError(f"service {service} stopped as it started (its reason is in the Event Log)")
        if time.monotonic() >= deadline:
            raise StateError(f"service {service} did not report running within {START_TIMEOUT:g} s "
                             "(see the Event Log)")
        time.sleep(0.2)


def _restart_on_failure(service: str, win32service) -> bool:
    """Like cloudflared: restart after a crash, after 2 s, indefinitely; True when also after
    the node stops itself with an error (a node that cannot start). That second setting is
    a level Wine's service manager lacks (124, 'Invalid level'): without it the service is
    still restarted after a crash, so the install goes on and says so."""
    import pywintypes

    manager = win32service.OpenSCManager(None, None, win32service.SC_MANAGER_ALL_ACCESS)
    try:
        handle = win32service.OpenService(manager, service, win32service.SERVICE_ALL_ACCESS)
        try:
            actions = [(win32service.SC_ACTION_RESTART, RESTART_DELAY_MS)] * 3
            win32service.ChangeServiceConfig2(handle, win32service.SERVICE_CONFIG_FAILURE_ACTIONS,
                                              {"ResetPeriod": 86400, "RebootMsg": None, "Command": None,
                                               "Actions": actions})
            try:
                win32service.ChangeServiceConfig2(handle, win32service.SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, True)
            except pywintypes.error as exc:
                log.warning("service %s: restarts after a crash, but not after it stops with an error: "
                            "%s: %s", service, exc.funcname, exc.strerror)
                return False
            return True
        finally:
            win32service.CloseServiceHandle(handle)
    finally:
        win32service.CloseServiceHandle(manager)


def uninstall(name: str) -> dict:
    _, win32service, win32serviceutil = _modules()
    service = f"ockam-{name}"
    with _windows_errors(service):
        _remove(service, win32service, win32serviceutil)
    return {"removed": service}


def status(name: str) -> dict:
    _, win32service, win32serviceutil = _modules()
    with _windows_errors(f"ockam-{name}"):
        state = win32serviceutil.QueryServiceStatus(f"ockam-{name}")[1]
    names = {win32service.SERVICE_RUNNING: "running", win32service.SERVICE_STOPPED: "stopped",
             win32service.SERVICE_START_PENDING: "starting", win32service.SERVICE_STOP_PENDING: "stopping"}
    return {"service": f"ockam-{name}", "state": names.get(state, str(state))}


def run(config: str, name: str) -> None:
    """What the service manager starts: hand this process to the dispatcher."""
    servicemanager, _, _ = _modules()
    cls = service_class(config, name)
    servicemanager.Initialize()
    servicemanager.PrepareToHostSingle(cls)
    servicemanager.StartServiceCtrlDispatcher()
