"""The node's HTTP status endpoint, on the node's own loop (gevent's WSGI server):

    GET /metrics  the Prometheus text format (node/control/metrics.py)
    GET /health   200 while the node's loop runs
    GET /ready    200 when each relay it registers is up at one relay node at least and each
                  inlet has a route whose outlet answers, else 503; the JSON body names what is
                  not ready, and what is degraded (one of several down), with state and last error

Off unless an address is configured; `PORT` alone binds loopback. It serves MAX_REQUESTS at a
time and gives each request, from its first byte to the last of the answer (or an idle
kept-alive connection), REQUEST_DEADLINE in all, so slow clients cannot pile up greenlets in
a node that carries traffic, nor hold the endpoint for longer than that. What strangers send
wrong is logged at most once a minute. Bind it to loopback or a management network: anyone
who reaches it can read the node's numbers and keep its few slots busy.
"""

from __future__ import annotations

import json
import logging

import gevent
from gevent.pool import Pool
from gevent.pywsgi import WSGIHandler, WSGIServer

from appliance.node.control import metrics
from appliance.node.errors import RouteError
from appliance.node.lograte import LogRate
from appliance.node.transport.tcp import os_reason
from appliance.observe.exposition import CONTENT_TYPE, render
from appliance.wire.multiaddr import Tcp, parse_bind

log = logging.getLogger(__name__)

MAX_REQUESTS = 16  # served at once; more wait in the listen backlog
REQUEST_DEADLINE = 5.0  # seconds to send a request line and headers, and to take the answer


BAD_REQUEST_LOG_EVERY = 60.0


class _Handler(WSGIHandler):
    def handle_one_request(self):
        """None (close the connection) when the deadline passes first."""
        with gevent.Timeout(REQUEST_DEADLINE, False):
            return super().handle_one_request()
        return None


class _ErrorLog:
    """gevent's WSGI server writes what clients do wrong here: rate-limited, not one line each."""

    def __init__(self):
        self._rate = LogRate(log, BAD_REQUEST_LOG_EVERY)

    def write(self, text: str) -> None:
        self._rate.warning(None, "status endpoint: %s", text.strip())

    def flush(self) -> None:
        pass


class StatusServer:
    def __init__(self, runtime, address: str):
        self.runtime = runtime
        target = parse_bind(address)
        self.server = WSGIServer((target.host, target.port), self._app, spawn=Pool(MAX_REQUESTS),
                                 handler_class=_Handler, log=None, error_log=_ErrorLog())
        try:
            self.server.start()
        except OSError as exc:
            raise RouteError(f"cannot serve metrics on {address}: {os_reason(exc)}") from None
        self.address = Tcp(*self.server.address[:2]).hostport

    def close(self) -> None:
        self.server.stop(timeout=1)

    def _app(self, environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if method not in ("GET", "HEAD"):
            status, kind, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
        elif path == "/metrics":
            status, kind, body = "200 OK", CONTENT_TYPE, render(metrics.families(self.runtime))
        elif path == "/health":
            status, kind, body = "200 OK", "text/plain", b"ok\n"
        elif path == "/ready":
            ready, waiting, degraded = metrics.readiness(self.runtime)
            status = "200 OK" if ready else "503 Service Unavailable"
            kind, body = "application/json", json.dumps({"ready": ready, "not_ready": waiting,
                                                         "degraded": degraded}).encode() + b"\n"
        else:
            status, kind, body = "404 Not Found", "text/plain", b"/metrics, /health or /ready\n"
        start_response(status, [("Content-Type", kind), ("Content-Length", str(len(body)))])
        return [body] if method == "GET" else []
