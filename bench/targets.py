"""The services the benchmark reaches through each path, all on loopback."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys

from bench.net import free_port, wait_for_port

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
