"""The client's address at the service (issue 15): an outlet with --proxy-protocol in front of a
real nginx (Debian's, `listen ... proxy_protocol`), which logs the address and port of the
client as the inlet saw it, not the outlet's own.

    client (127.0.0.2:P) --> inlet (c) --> outlet (e, --proxy-protocol vN) --> nginx
"""

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.helpers import free_port, wait_until

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
pytestmark = [pytest.mark.timeout(60),
              pytest.mark.skipif(NGINX is None, reason="nginx is not installed (make test installs it)")]

CONFIG = """
daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    log_format client '$proxy_protocol_addr:$proxy_protocol_port $remote_addr';
    server {{
        listen 127.0.0.1:{port} proxy_protocol;
        access_log {dir}/access.log client;
        location / {{ return 200 "seen\\n"; }}
    }}
}}
"""


@pytest.fixture
def nginx(tmp_path):
    port = free_port()
    (tmp_path / "nginx.conf").write_text(CONFIG.format(dir=tmp_path, port=port))
    proc = subprocess.Popen([NGINX, "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: _open(port), timeout=10, what="nginx to listen")
        yield port, tmp_path / "access.log"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_nginx_logs_the_inlets_client(ockam, nginx, version):
    port, access_log = nginx
    relay = free_port()
    ockam("node", "create", "r", "--tcp-listener-address", f"127.0.0.1:{relay}")
    ockam("node", "create", "e")
    ockam("relay", "create", "e", "--at", "/node/r", "--to", "e")
    ockam("tcp-outlet", "create", "--at", "e", "--to", f"127.0.0.1:{port}", "--proxy-protocol", version)
    ockam("node", "create", "c")
    inlet = free_port()
    ockam("tcp-inlet", "create", "--at", "c", "--from", f"127.0.0.1:{inlet}",
          "--to", "/node/r/service/forward_to_e/service/outlet")
    with socket.socket() as sock:
        sock.bind(("127.0.0.2", 0))  # a client address that is nobody else's here
        client = sock.getsockname()
        sock.settimeout(10)
        sock.connect(("127.0.0.1", inlet))
        sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"seen\n")
    wait_until(lambda: access_log.exists() and access_log.read_text(), timeout=5, what="nginx's log line")
    # nginx saw the connection come from the outlet (127.0.0.1), and the client in the header
    assert access_log.read_text().splitlines() == [f"{client[0]}:{client[1]} 127.0.0.1"]
