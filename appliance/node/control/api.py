"""The control API: JSON requests from the local CLI, one per connection:
`{"op": "relay.create", "args": {...}}\\n` -> `{"ok": true, "result": ...}\\n`.

It is never reachable through a node's transports (it is not a worker), and only the
node's owner can use it. It listens on one of:
- a Unix socket, 0600 inside a 0700 directory, each peer's uid checked with SO_PEERCRED;
- loopback TCP on a random port (where there are no Unix sockets: CPython on Windows), with
  a 32-byte token the node wrote, with the port, to a file only its user can read
  (host/control.py). Before the request, the node proves it holds the token and the CLI
  presents it (wire/control.py); a connection that does not is closed after one short line.
  At most MAX_TCP_CLIENTS are served at once.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import socket as _stdsocket
import struct

import gevent
from gevent import socket
from gevent.pool import Pool
from gevent.server import StreamServer

from appliance.errors import ApplianceError
from appliance.node.errors import NodeError
from appliance.node.lograte import LogRate
from appliance.wire import control

log = logging.getLogger(__name__)

MAX_REQUEST = 1 << 20
MAX_TCP_CLIENTS = 32
REQUEST_READ_TIMEOUT = 10.0
MAX_SOCKET_PATH = 100


class ControlError(ApplianceError):
    """Base for errors of operations that upper layers add (reload): shown to the user as is."""


class SocketPathTooLong(NodeError):
    """Unix socket paths are limited to about 100 bytes."""


def bind_unix(path: str):
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise SocketPathTooLong(f"control socket path {path!r} is too long; use a shorter OCKAM_HOME")
    if os.path.exists(path):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    sock.listen(64)
    return sock


def bind_loopback():
    """A listening TCP socket on 127.0.0.1, on a port the system picks."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def peer_uid(sock) -> int | None:
    if not hasattr(_stdsocket, "SO_PEERCRED"):
        return None
    creds = sock.getsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


class ControlServer:
    """Serves the control API on `listener` (bind_unix or bind_loopback); with `token`, each
    request must carry it. `path`: a file to remove when closed (the socket, or the token file)."""

    def __init__(self, operations: dict, listener, path: str | None = None, token: str | None = None):
        """`operations`: request name -> what serves it (ControlOperations.table(), and what
        the node's host adds: stop, reload); nothing else can be called."""
        self.operations = operations
        self.path = path
        self.token = token
        self._refusals = LogRate(log, 60.0)
        self.server = StreamServer(listener, self._serve, spawn=Pool(MAX_TCP_CLIENTS) if token else "default")
        self.server.start()

    @property
    def port(self) -> int:
        return self.server.address[1]

    def close(self) -> None:
        self.server.stop(timeout=1)
        if self.path is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def _serve(self, sock, _addr) -> None:
        uid = peer_uid(sock) if sock.family == getattr(socket, "AF_UNIX", None) else None
        if uid is not None and uid not in (os.getuid(), 0):
            log.warning("refused a control connection from uid %d", uid)
            sock.close()
            return
        reader = sock.makefile("rb")  # the socket closes only once this is closed too
        try:
            self._answer(sock, reader)
        except OSError:
            pass
        finally:
            reader.close()
            sock.close()

    def _answer(self, sock, reader) -> None:
        try:
            with gevent.Timeout(REQUEST_READ_TIMEOUT):
                if self.token is not None and not self._handshake(sock, reader):
                    self._refusals.warning(None, "refused a control connection that did not present the node's token")
                    return
                line = reader.readline(MAX_REQUEST + 1)
            response = self.dispatch(line)
        except gevent.Timeout:
            response = {"ok": False, "error": "request not received in time"}
        sock.sendall(json.dumps(response).encode() + b"\n")

    def _handshake(self, sock, reader) -> bool:
        """wire/control.py: prove we hold the token, then check the client's."""
        nonce = reader.readline(control.MAX_LINE).strip().decode("ascii", "replace")
        if not control.is_hex(nonce, control.NONCE_HEX):
            return False
        sock.sendall(control.proof(self.token, nonce).encode() + b"\n")
        token = reader.readline(control.MAX_LINE).strip()
        return hmac.compare_digest(token, self.token.encode())

    def dispatch(self, line: bytes) -> dict:
        if len(line) > MAX_REQUEST:
            return {"ok": False, "error": "request too large"}
        try:
            request = json.loads(line)
            op, args = request["op"], request.get("args") or {}
            if not isinstance(args, dict):
                raise TypeError("args must be an object")
        except (ValueError, KeyError, TypeError) as exc:
            return {"ok": False, "error": f"malformed request: {exc}", "exit_code": 1}
        target = self.operations.get(op) if isinstance(op, str) else None
        if target is None:
            return {"ok": False, "error": f"unknown operation {op!r} (is the node older than this command?)",
                    "exit_code": 1}
        try:
            return {"ok": True, "result": target(**args)}
        except ApplianceError as exc:
            return {"ok": False, "error": str(exc), "exit_code": exc.exit_code}
        except TypeError as exc:
            return {"ok": False, "error": f"bad arguments for {op}: {exc}", "exit_code": 1}
        except Exception as exc:  # noqa: BLE001 - report, log, keep serving
            log.exception("control operation %s failed", op)
            return {"ok": False, "error": f"internal error in {op}: {exc}"}
