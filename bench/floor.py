"""How fast can three relaying processes be at all? `make bench-floor`

    python -m bench.floor [--requests N]

Puts chains of three bare forwarders (no framing, no routes, no relay: read, write) between
redis-benchmark and redis, next to the OpenSSH chain and our plain portal, in one run:
- socat (C, a process per connection),
- a pure-Python epoll loop (one process, no greenlets),
- gevent with a greenlet per direction of each connection, on our HubSocket,
- gevent with no greenlet per connection: HubSocket's read callbacks in the hub, as our
  nodes read since issue 12,
and reports redis PING req/s at 1 and 50 clients with the machine's CPU time per request,
and the relaying processes' own CPU per request split into user time (the interpreter, or
ssh's code) and kernel time. It is the evidence behind the closing notes of the performance
issues: the greenlet-per-connection design had a ceiling before any of our protocol work was
done, and the user time of a Python process per wake-up is what compiling could shrink.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import subprocess
import sys

from bench import paths, targets, workloads
from bench.net import free_port, process_cpu_seconds, wait_for_port

EPOLL_FORWARDER = r"""
import select, socket, sys
listen_port, target = int(sys.argv[1]), int(sys.argv[2])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen_port)); srv.listen(1024); srv.setblocking(False)
poll = select.epoll(); poll.register(srv.fileno(), select.EPOLLIN)
socks, peer = {}, {}
while True:
    for fd, _ in poll.poll():
        if fd == srv.fileno():
            a, _ = srv.accept(); b = socket.create_connection(("127.0.0.1", target))
            for s in (a, b):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1); s.setblocking(False)
                socks[s.fileno()] = s; poll.register(s.fileno(), select.EPOLLIN)
            peer[a.fileno()], peer[b.fileno()] = b, a
            continue
        try:
            data = socks[fd].recv(65536)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        other = peer.get(fd)
        if data and other is not None:
            other.setblocking(True); other.sendall(data); other.setblocking(False)
            continue
        for s in (socks.pop(fd, None), other):
            if s is not None and s.fileno() >= 0:
                poll.unregister(s.fileno()); socks.pop(s.fileno(), None); peer.pop(s.fileno(), None); s.close()
"""

HUB_FORWARDER = r"""
import sys
import gevent
from appliance.node.transport.sockets import Listener, connect
listen_port, target = int(sys.argv[1]), int(sys.argv[2])
def pipe(src, dst):
    try:
        while True:
            data = src.recv(262144)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        src.close(); dst.close()
def handle(client, _peer):
    upstream = connect("127.0.0.1", target, 5)
    gevent.spawn(pipe, upstream, client)
    pipe(client, upstream)
Listener("127.0.0.1", listen_port, handle)
gevent.wait()
"""

CALLBACK_FORWARDER = r"""
import sys
import gevent
from appliance.node.transport.sockets import Listener, connect
listen_port, target = int(sys.argv[1]), int(sys.argv[2])
def pipe(src, dst):
    def readable():
        try:
            data = src.recv_now(262144)
            if data is None:
                return
            if data:
                dst.sendall(data)  # loopback, small replies: the kernel takes it at once
                return
        except OSError:
            pass
        src.close(); dst.close()
    src.read_by(readable)
def handle(client, _peer):
    upstream = connect("127.0.0.1", target, 5)
    pipe(client, upstream)
    pipe(upstream, client)
Listener("127.0.0.1", listen_port, handle)
gevent.wait()
"""


def forwarder_argv(kind: str, listen_port: int, target: int) -> list:
    if kind == "socat":
        return ["socat", f"TCP-LISTEN:{listen_port},bind=127.0.0.1,fork,reuseaddr", f"TCP:127.0.0.1:{target}"]
    code = {"epoll": EPOLL_FORWARDER, "hub": HUB_FORWARDER, "callbacks": CALLBACK_FORWARDER}[kind]
    return [sys.executable, "-c", code, str(listen_port), str(target)]


@contextlib.contextmanager
def chain(kind: str, target: int, hops: int = 3):
    procs, port = [], target
    try:
        for _ in range(hops):
            listen_port = free_port()
            procs.append(subprocess.Popen(forwarder_argv(kind, listen_port, port), stderr=subprocess.DEVNULL))
            wait_for_port(listen_port)
            port = listen_port
        yield paths.Path(port, {}, tuple(proc.pid for proc in procs))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


def measure(path, requests: int) -> dict:
    row = {}
    for clients in (1, 50):
        movers_before = process_cpu_seconds(path.cpu_pids())
        rps, _p50, cpu_us = workloads.redis_ping(path.port, clients, requests)
        user, kernel = (round((after - before) / requests * 1e6)
                        for after, before in zip(process_cpu_seconds(path.cpu_pids()), movers_before))
        row[f"c={clients} req/s"], row[f"c={clients} cpu us/req"] = round(rps), cpu_us
        row[f"c={clients} user"], row[f"c={clients} kernel"] = user, kernel
    return row


ROW_KEYS = tuple(f"c={clients} {what}" for clients in (1, 50)
                 for what in ("req/s", "cpu us/req", "user", "kernel"))
COLUMNS = ("c=1 req/s", "cpu us/req", "user", "kernel", "c=50 req/s", "cpu us/req", "user", "kernel")


CHAINS = {
    "socat x3": lambda target: chain("socat", target),
    "python epoll x3": lambda target: chain("epoll", target),
    "gevent HubSocket x3": lambda target: chain("hub", target),
    "gevent callbacks x3": lambda target: chain("callbacks", target),
    "openssh chain": paths.openssh_chain,
    "ockam portal (plain)": paths.ockam_relay_portal,
    "ockam portal (encrypted)": functools.partial(paths.ockam_relay_portal, secure=True),
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.floor")
    parser.add_argument("--requests", type=int, default=20000)
    opts = parser.parse_args()
    print(f"{'path':<24}" + "".join(f"{column:>12}" for column in COLUMNS))
    with targets.redis() as target:
        for name, make in CHAINS.items():
            try:
                with make(target) as path:
                    row = measure(path, opts.requests)
            except Exception as exc:  # noqa: BLE001 - report it and go on with the other chains
                print(f"{name:<24}failed: {exc}")
                continue
            print(f"{name:<24}" + "".join(f"{row[key]:>12,}" for key in ROW_KEYS), flush=True)
    print("cpu us/req: busy CPU of the whole machine per request (relays, sshd, redis and the client"
          " alike), so rows compare; the machine is shared, so expect noise.\n"
          "user, kernel: us per request in the three relaying processes alone, in their own code"
          " (the interpreter, ssh) and in the kernel (system calls, loopback TCP, wake-ups)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
