"""The services the benchmark reaches through each path, all on loopback."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile

from bench.net import free_port, reap, wait_for_port

# A selectors echo server in its own process: one thread holds 10 000 idle connections.
ECHO_SERVER = r"""
import selectors, socket, sys
sel = selectors.DefaultSelector()
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1]))); srv.listen(4096); srv.setblocking(False)
sel.register(srv, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        if key.fileobj is srv:
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            conn.setblocking(False)
            sel.register(conn, selectors.EVENT_READ)
            continue
        try:
            data = key.fileobj.recv(65536)
        except OSError:
            data = b""
        if data:
            try:
                key.fileobj.sendall(data)
            except OSError:
                pass
        else:
            sel.unregister(key.fileobj)
            key.fileobj.close()
"""


# `bulk N` gets N MiB (a seeded 1 MiB block, repeated); anything else is echoed.
BULK_OR_ECHO_SERVER = r"""
import random, socket, sys, threading
block = random.Random(1).randbytes(1 << 20)
def serve(conn):
    with conn:
        try:
            first = conn.recv(65536)
            if first.startswith(b"bulk "):
                for _ in range(int(first.split()[1])):
                    conn.sendall(block)
                return
            while first:
                conn.sendall(first)
                first = conn.recv(65536)
        except OSError:
            pass
srv = socket.create_server(("127.0.0.1", int(sys.argv[1])), backlog=1024)
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


@contextlib.contextmanager
def process(argv: list, port: int):
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def iperf3():
    port = free_port()
    return process(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port)], port)


def redis():
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed")
    port = free_port()
    return process(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--maxclients", "20000"], port)


def echo():
    port = free_port()
    return process([sys.executable, "-c", ECHO_SERVER, str(port)], port)


def bulk_or_echo():
    port = free_port()
    return process([sys.executable, "-c", BULK_OR_ECHO_SERVER, str(port)], port)


@contextlib.contextmanager
def postgres():
    """A throwaway PostgreSQL cluster on 127.0.0.1 only (trust auth, no fsync), with
    pgbench's tables at scale 10; superuser and database are both `postgres`. Stopped and
    deleted at the end, even on failure. Debian keeps the server tools off PATH, one
    directory per version: the newest is used. Postgres refuses to run as root, so as root
    the server and its setup run as the `postgres` system user (made by the package)."""
    initdbs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),  # by version: 9.6 < 10 < 15
                     key=lambda p: [int(n) for n in p.split("/")[4].split(".")])
    if not initdbs:
        raise RuntimeError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb)")
    bin_dir = os.path.dirname(initdbs[-1])
    tmp = tempfile.mkdtemp(prefix="bench-pg-")
    owner = {}
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError("running as root and there is no postgres user to run PostgreSQL as") from None
        os.chown(tmp, user.pw_uid, user.pw_gid)
        owner = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    data, port, server = os.path.join(tmp, "data"), free_port(), None

    def run(*argv: str) -> None:
        proc = subprocess.run(argv, cwd=tmp, capture_output=True, text=True, timeout=600, **owner)
        if proc.returncode != 0:
            raise RuntimeError(f"{os.path.basename(argv[0])} failed: {proc.stderr.strip()}")

    try:
        run(f"{bin_dir}/initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync")
        with open(os.path.join(tmp, "server.log"), "w") as log:
            server = subprocess.Popen(
                [f"{bin_dir}/postgres", "-D", data, "-p", str(port), "-c", "listen_addresses=127.0.0.1",
                 "-c", f"unix_socket_directories={tmp}", "-c", "fsync=off", "-c", "max_connections=100"],
                cwd=tmp, stdout=log, stderr=log, **owner)
        try:
            wait_for_port(port)
        except RuntimeError:
            with open(os.path.join(tmp, "server.log")) as log:
                raise RuntimeError(f"postgres did not start: {log.read().strip()}") from None
        run(f"{bin_dir}/pgbench", "-i", "-s", "10", "-q", "-h", "127.0.0.1", "-p", str(port),
            "-U", "postgres", "postgres")
        yield port
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)  # fast shutdown: ends sessions a path left open
            reap(server, 30)
        shutil.rmtree(tmp, ignore_errors=True)
