"""Run one node in the foreground until asked to stop, then stop gracefully.

This is what a background node, a systemd unit and a Windows service all execute: start
the node, then everything its topology declares, and serve. A stop request (SIGTERM,
SIGINT, `node.stop`, the Windows service manager) closes the listeners, lets open portal
connections finish for a grace period, then closes the rest.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import signal
import sys
import threading
import time

import gevent
from gevent.event import Event

from appliance.config import topology as topology_file
from appliance.config.topology import Topology
from appliance.host import control, projects, state, systemd
from appliance.host.deployment import Deployment, ReloadError
from appliance.host.memory import MemoryTrimmer, tune_allocator
from appliance.limits.budgets import Limits
from appliance.node.errors import NodeError
from appliance.node.project.info import ProjectNode
from appliance.node.relays.relay import SecretBook
from appliance.node.runtime import NodeRuntime
from appliance.node.control.status_server import StatusServer
from appliance.secure.identity import Identity

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_MAX_BYTES = 10 << 20
LOG_BACKUPS = 3
LOG_FORMAT_ENV = "OCKAM_LOG_FORMAT"  # "json": one JSON object per line
DEFAULT_GRACE = 10.0
JOIN_RETRY = 1.0  # seconds before a node asks a project node that was away at its start again, doubling...
JOIN_RETRY_MAX = 60.0  # ...up to this


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname,
                 "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def stderr_is_journal() -> bool:
    """JOURNAL_STREAM names the journal's stream as device:inode; children inherit the
    variable, so it counts only when it is still our stderr (systemd.exec(5))."""
    value = os.environ.get("JOURNAL_STREAM", "")
    try:
        stat = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return value == f"{stat.st_dev}:{stat.st_ino}"


def setup_logging(name: str, verbosity: int, to_stderr: bool) -> None:
    """The log where the platform wants it: under systemd (stderr is the journal) stderr only,
    which is the journal; elsewhere the node's rotating file, and stderr too when asked. A
    Windows service also writes its life cycle to the Event Log (service_windows.py)."""
    level = logging.DEBUG if verbosity >= 2 else logging.INFO
    journal = stderr_is_journal()
    handlers: list[logging.Handler] = [] if journal else [logging.handlers.RotatingFileHandler(
        state.log_path(name), maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS)]
    if to_stderr or journal:
        handlers.append(logging.StreamHandler(sys.stderr))
    formatter = JsonLines() if os.environ.get(LOG_FORMAT_ENV) == "json" else logging.Formatter(LOG_FORMAT)
    for handler in handlers:
        handler.setFormatter(formatter)
    logging.basicConfig(level=level, handlers=handlers, force=True)


class NodeService:
    """A node with its topology, run by `run()` until `request_stop()` (from any thread)."""

    def __init__(self, name: str, topology: Topology, created_args: list[str], identity: Identity,
                 grace: float = DEFAULT_GRACE, load_topology=None):
        self.name = name
        self.topology = topology
        # how a reload reads the topology: the file, with whatever overrode it at start;
        # load(environ) fills the file's ${VARS} from `environ`
        self._load = load_topology or (lambda environ: topology_file.load(topology.source, environ))
        self._given: dict = {}  # variables `node reload` brought from its shell: later reloads keep them
        self._project_read = None  # the project file as last read: a reload applies what changed in it
        self.created_args = created_args
        self.identity = identity
        self.grace = grace
        self._stop = Event()
        self._wakeup = None  # a loop watcher other threads may trigger
        self._stop_requested = threading.Event()
        self.ready = threading.Event()

    def request_stop(self) -> None:
        """Thread-safe: wake the node's loop and tell it to stop."""
        self._stop_requested.set()
        if self._wakeup is not None:
            self._wakeup.send()

    def reload(self, deployment: Deployment, environ: dict | None = None) -> dict:
        """Read the topology file again and apply it (SIGHUP and `ockam node reload`).
        `environ`: the topology's variables that are set in the shell of `node reload`; they
        win over the node's own environment, as they do in `config check` run there. A
        SIGHUP (None) uses what the last `node reload` brought. The summary says where each
        variable's value came from."""
        source = deployment.topology.source
        if not source:
            raise ReloadError("this node was not started from a topology file")
        if environ is None:
            given, label = self._given, "the shell of the last 'node reload'"
        else:
            given, label = {str(k): str(v) for k, v in environ.items()}, "the shell of 'node reload'"
        systemd.notify("RELOADING=1")
        try:
            text = _read(source)  # what the variables' sources are told from: the file as applied
            new = self._load({**os.environ, **given})
            change, project = self._project_change(deployment, new)
            summary = deployment.reload(new, change)
        except topology_file.ConfigError as exc:
            log.error("reload failed: %s", exc)
            raise ReloadError(f"{exc}; the previous configuration is still in force", exc.exit_code) from None
        except OSError as exc:
            log.error("reload failed: cannot read %s: %s", source, exc.strerror or exc)
            raise ReloadError(f"cannot read {source}: {exc.strerror or exc}; the previous configuration is "
                              "still in force") from None
        except ReloadError as exc:
            log.error("reload failed: %s", exc)
            raise
        finally:
            systemd.notify("READY=1")
        self._given = given
        if project is not None:
            self._project_read = project
            projects.save(project)
            summary["project"] = (f"{new.member_of}: project {project.name}, relay boxes "
                                  f"{', '.join(box.target.hostport for box in project.access)}")
        summary["variables"] = topology_file.variable_sources(text, [(label, given),
                                                                     ("the node's environment", os.environ)])
        log.info("reloaded %s: %s", source, summary)
        return summary

    def _project_change(self, deployment: Deployment, new: Topology) -> tuple:
        """(the reload's change to the runtime, the project as its file now says) when the
        node belongs to a project and its file has changed since it was last read (a relay
        box added or removed); (None, None) when not. A file that cannot be read leaves the
        project as it is (the copy taken at start is in force); one that now describes
        another project takes a restart."""
        if not new.member_of or new.member_of != deployment.topology.member_of:
            return None, None  # none, or another file: Deployment says that takes a restart
        try:
            info = projects.read_project_file(new.member_of)
        except state.StateError as exc:
            log.warning("%s; project %s keeps its relay boxes as they were", exc, self._project_read.name)
            return None, None
        if info == self._project_read:
            return None, None
        runtime, known = deployment.runtime, deployment.runtime.trust.projects.get(self._project_read.name)
        if (info.name, info.authority_key) != (known.name, known.authority_key):
            raise ReloadError(f"{new.member_of} now describes another project (or another authority): that "
                              "takes a restart; the previous configuration is still in force")
        return (lambda: runtime.membership.update(info), lambda: runtime.membership.update(known)), info

    def _control_server(self, runtime, deployment):
        """The CLI's way in: a Unix socket, or loopback TCP with a token (host/control.py)."""
        return control.serve({
            **runtime.control.table(),
            "node.stop": lambda: gevent.spawn_later(0.05, self._stop.set) and None,
            "node.reload": lambda environ=None: self.reload(deployment, environ),
        }, self.name)

    def _join_project(self, runtime: NodeRuntime) -> bool:
        """Get a credential from the project this node belongs to; spend the topology's
        enrollment ticket only when this identity is not a member yet (tickets work once).
        False when the project node could not be reached: to be tried again."""
        if self._project_read is None:
            return True
        name = self._project_read.name
        try:
            # a credential kept from before may be one the project would no longer give: ask
            if not runtime.membership.fetch_now(name) and self.topology.enrollment_ticket:
                ticket = projects.decode_ticket(self.topology.enrollment_ticket)
                runtime.control.project_enroll(ticket["project"], ticket["token"])
                log.info("enrolled in project %s", name)
        except state.StateError as exc:  # a damaged ticket: trying again would not mend it
            log.error("could not join project %s: %s", name, exc)
        except NodeError as exc:
            log.error("could not join project %s: %s (trying again in the background; relays there keep "
                      "retrying)", name, exc)
            return False
        return True

    def _join_later(self, runtime: NodeRuntime) -> None:
        """The project node was away at start: ask again, less and less often, until it answers."""
        wait = JOIN_RETRY
        while True:
            gevent.sleep(wait)
            if self._join_project(runtime):
                return
            wait = min(wait * 2, JOIN_RETRY_MAX)

    def run(self) -> None:
        self._serve(self._runtime())

    def _runtime(self) -> NodeRuntime:
        member_of = None
        if self.topology.member_of:
            member_of = projects.read_project_file(self.topology.member_of)
            projects.save(member_of)
        self._project_read = member_of
        project_node = None
        if self.topology.project:
            name, address, ttl = self.topology.project
            members, save = projects.members_store(self.name)
            project_node = ProjectNode(name, address, members, save, ttl)
        return NodeRuntime(self.name, node_lookup=state.listener_of, identity=self.identity,
                           relay_authorized=self.topology.relay_authorized, projects=projects.load_all(),
                           project_node=project_node, link_timeout=self.topology.link_timeout,
                           relay=bool(self.topology.relay), relay_grace=self.topology.relay_grace,
                           limits=Limits(**dict(self.topology.limits)),
                           relay_secrets=SecretBook(*state.json_store(state.node_dir(self.name) / "relay_secrets.json")),
                           relay_box_of=member_of.name if member_of and self.topology.relay_box else None,
                           credential_store=self._credential_store())

    def _credential_store(self) -> tuple:
        """Where the node keeps its credentials: only a cache, so a damaged one is dropped."""
        path = state.node_dir(self.name) / "credentials.json"
        try:
            return state.json_store(path)
        except state.StateError as exc:
            log.warning("%s; starting without the credentials kept there", exc)
            return state.json_store(path, damaged_ok=True)

    def _serve(self, runtime: NodeRuntime) -> None:
        deployment = Deployment(runtime, self.topology)
        self._wakeup = gevent.get_hub().loop.async_()
        self._wakeup.start(self._stop.set)
        if self._stop_requested.is_set():
            self._stop.set()
        watchdog = status = joining = None
        tune_allocator()
        trimmer = MemoryTrimmer()
        try:
            listener = runtime.listen(self.topology.tcp_listener_address)
            if self.topology.metrics_address:
                status = StatusServer(runtime, self.topology.metrics_address)
            state.write_node(self.name, {
                "name": self.name, "pid": os.getpid(), "listener_address": listener.address,
                "identifier": self.identity.identifier, "args": self.created_args, "started": time.time(),
                "metrics_address": status.address if status else None,
            })
            control = self._control_server(runtime, deployment)
            try:
                joining = None if self._join_project(runtime) else gevent.spawn(self._join_later, runtime)
                deployment.start()
                if threading.current_thread() is threading.main_thread():
                    for signum in (signal.SIGTERM, signal.SIGINT):
                        gevent.signal_handler(signum, self._stop.set)
                    if hasattr(signal, "SIGHUP"):  # not on Windows: `ockam node reload` there
                        gevent.signal_handler(signal.SIGHUP, lambda: gevent.spawn(_quietly, self.reload, deployment))
                log.info("node %s is up, listening on %s, identity %s%s", self.name, listener.address,
                         self.identity.identifier, f", metrics at http://{status.address}/metrics" if status else "")
                systemd.notify("READY=1", f"STATUS=listening on {listener.address}")
                watchdog = systemd.start_watchdog()
                self.ready.set()
                self._stop.wait()
                log.info("node %s stopping (grace %g s for open portal connections)", self.name, self.grace)
                systemd.notify("STOPPING=1")
                runtime.drain(self.grace)
            finally:
                if control is not None:
                    control.close()
        finally:
            trimmer.stop()
            if joining is not None:
                joining.kill(block=False)
            if status is not None:
                status.close()
            if watchdog is not None:
                watchdog.kill()
            self._wakeup.close()
            deployment.stop()
            runtime.shutdown()
        state.update_node(self.name, pid=None)
        log.info("node %s stopped", self.name)


def _read(path: str) -> str:
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def _quietly(fn, *args) -> None:
    """Run fn, whose errors it has already logged (a signal handler has nobody to report to)."""
    try:
        fn(*args)
    except ReloadError:
        pass
