"""The Windows service adapter (pywin32): the same NodeService behind the service manager.

`ockam service install --config FILE` registers `ockam.exe service run --config FILE
--name NAME` as an auto-start service with restart-on-failure; the service manager then
starts that command, which hands control to `StartServiceCtrlDispatcher`. Stop requests
arrive on the service manager's thread and wake the gevent loop with a thread-safe
watcher (NodeService.request_stop). pywin32 is imported only here, when this runs.
"""

from __future__ import annotations

import threading

from appliance.config import topology as topology_file
from appliance.host.process import self_command
from appliance.host.state import StateError

RESTART_DELAY_MS = 2000


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

        def __init__(self, args):
            super().__init__(args)
            self.node = None
            self.node_created = threading.Event()

        def SvcStop(self):
            self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING)
            self.node_created.wait(30)
            if self.node is not None:
                self.node.request_stop()

        def SvcDoRun(self):
            from appliance.cli.node_cmd import build_node_service

            servicemanager.LogInfoMsg(f"{self._svc_name_}: starting from {config}")
            self.node = build_node_service(config, log_to_stderr=False)
            self.node_created.set()
            self.ReportServiceStatus(win32service.SERVICE_RUNNING)
            self.node.run()
            servicemanager.LogInfoMsg(f"{self._svc_name_}: stopped")

    return OckamService


def install(config: str, name: str | None, start: bool = True) -> dict:
    spec = topology_file.load(config)
    name = name or spec.name
    if not name:
        raise StateError(f"{config}: node.name: missing (or pass --name)")
    _, win32service, win32serviceutil = _modules()
    cls = service_class(config, name)
    command = self_command()
    win32serviceutil.InstallService(
        None, cls._svc_name_, cls._svc_display_name_, description=cls._svc_description_,
        startType=win32service.SERVICE_AUTO_START, exeName=command[0],
        exeArgs=" ".join(command[1:] + ["service", "run", "--config", f'"{config}"', "--name", name]))
    win32serviceutil.SetServiceCustomOption(cls._svc_name_, "config", config)
    _restart_on_failure(cls._svc_name_, win32service)
    if start:
        win32serviceutil.StartService(cls._svc_name_)
    return {"service": cls._svc_name_, "config": config, "started": start}


def _restart_on_failure(service: str, win32service) -> None:
    """Like cloudflared: restart after a crash, after 2 s, indefinitely."""
    manager = win32service.OpenSCManager(None, None, win32service.SC_MANAGER_ALL_ACCESS)
    try:
        handle = win32service.OpenService(manager, service, win32service.SERVICE_ALL_ACCESS)
        try:
            actions = [(win32service.SC_ACTION_RESTART, RESTART_DELAY_MS)] * 3
            win32service.ChangeServiceConfig2(handle, win32service.SERVICE_CONFIG_FAILURE_ACTIONS,
                                              {"ResetPeriod": 86400, "RebootMsg": None, "Command": None,
                                               "Actions": actions})
        finally:
            win32service.CloseServiceHandle(handle)
    finally:
        win32service.CloseServiceHandle(manager)


def uninstall(name: str) -> dict:
    _, _, win32serviceutil = _modules()
    service = f"ockam-{name}"
    try:
        win32serviceutil.StopService(service)
    except Exception:  # noqa: BLE001 - already stopped is fine
        pass
    win32serviceutil.RemoveService(service)
    return {"removed": service}


def status(name: str) -> dict:
    _, win32service, win32serviceutil = _modules()
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
