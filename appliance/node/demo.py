"""A tiny built-in HTTP responder, so the one-box demo has a service to reach."""

from __future__ import annotations

from appliance.node.transport.sockets import HubSocket, Listener
from appliance.node.transport.tcp import start_server

BODY = b"Hello from the ockam-appliance demo service: this answer came through a portal.\n"
MAX_REQUEST_HEAD = 16384


def _respond(sock: HubSocket, _addr) -> None:
    head = b""
    try:
        while b"\r\n\r\n" not in head and len(head) < MAX_REQUEST_HEAD:
            data = sock.recv(4096)
            if not data:
                return
            head += data
        is_head = head.startswith(b"HEAD ")
        sock.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(BODY)
                     + (b"" if is_head else BODY))
    except OSError:
        pass
    finally:
        sock.close()


def start_demo_http(bind: str) -> Listener:
    return start_server(bind, _respond)[0]
