"""A controllable loopback TCP proxy for chaos tests: a middlebox whose behaviour tests switch.

    proxy = ChaosProxy(target=("127.0.0.1", port)).start()
    proxy.address            # ("127.0.0.1", <port>): connect here instead of the target
    proxy.blackhole()        # connections stay open, nothing moves either way (no FIN, no RST)
    proxy.passthrough()      # forward again (what a blackhole held is delivered, as TCP would)
    proxy.throttle(8000)     # at most 8000 bytes/s in each direction
    proxy.delay(0.05)        # 50 ms more one-way latency in each direction, order kept
    proxy.reset_all()        # RST every current connection, both sides (SO_LINGER 0, close)
    proxy.stats()            # {"accepted", "active", "bytes_up", "bytes_down", "resets", ...}
    proxy.stop()

A mode applies at once to every current and future connection; the call returns when it is
in effect. `bytes_up` counts bytes written to the target, `bytes_down` bytes written back to
clients. While blackholed the proxy neither reads nor writes (the kernels' buffers fill and
the senders block, as behind a dead link) and dials the target for new clients only once
forwarding resumes. A client whose target refuses the connection is reset.

The proxy runs its own `selectors` loop on plain sockets in a background OS thread, so it
works next to a gevent hub in the test process. If gevent has monkey-patched this process
(threads would be greenlets, sockets cooperative), it runs instead in a subprocess,
`python -m tests.chaos.proxies --target H:P`, driven with JSON lines over its stdin/stdout;
`ChaosProxy(..., backend="process")` forces that. Loopback addresses only.
"""

from __future__ import annotations

import argparse
import collections
import errno
import ipaddress
import json
import os
import select
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

READ_CHUNK = 64 * 1024
MAX_PENDING = 1024 * 1024  # bytes read but not yet written, per direction: beyond, stop reading
MAX_ACCEPTS = 64  # per loop turn
MAX_TIMEOUT = 0.5  # the loop wakes at least this often
CALL_TIMEOUT = 10.0  # a control call that takes longer means the proxy is stuck: fail the test

_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


def _loopback(addr, what: str) -> tuple:
    host, port = addr[0], int(addr[1])
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"{what} {host} is not a loopback address (chaos proxies stay on loopback)")
    return host, port


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _rst_close(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class _Flow:
    """One direction of one connection: bytes read from src wait in `queue` until written to dst."""

    __slots__ = ("src", "dst", "counter", "queue", "offset", "pending", "eof_in", "eof_out", "tokens", "refilled")

    def __init__(self, src, dst, counter: str, tokens: float):
        self.src, self.dst, self.counter = src, dst, counter
        self.queue = collections.deque()  # [release_at, bytes | None (EOF)]
        self.offset = 0  # of queue[0] already written
        self.pending = 0
        self.eof_in = False  # src said EOF (queued as None)
        self.eof_out = False  # dst was shut down for writing
        self.tokens = tokens
        self.refilled = time.monotonic()


class _Conn:
    __slots__ = ("client", "upstream", "connecting", "flows", "closed")

    def __init__(self, client):
        self.client = client
        self.upstream = None
        self.connecting = False
        self.flows: list = []  # [client -> target, target -> client] once the target answered
        self.closed = False


class _Engine:
    """The proxy proper. `run()` is the loop; other threads talk to it only through `call()`."""

    def __init__(self, target, listen=("127.0.0.1", 0)):
        self.target = _loopback(target, "target")
        host, port = _loopback(listen, "listen address")
        self.listener = socket.socket(_family(host), socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(512)
        self.listener.setblocking(False)
        self.address = self.listener.getsockname()[:2]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.listener, _READ, "accept")
        self.sel.register(self._wake_r, _READ, "wake")
        self.masks: dict = {}  # socket -> registered events (conn sockets only)
        self.conns: set = set()
        self.blackholed = False
        self.rate: float | None = None  # bytes per second per direction, None: unlimited
        self.latency = 0.0  # added one-way delay, seconds
        self.counters = {"accepted": 0, "closed": 0, "resets": 0, "refused": 0, "bytes_up": 0, "bytes_down": 0}
        self._calls: collections.deque = collections.deque()
        self._running = True
        self.stopped = threading.Event()

    # --- control, from any thread -----------------------------------------------------------
    def call(self, op: str, timeout: float = CALL_TIMEOUT, **kwargs):
        """Run `op` in the loop and return its result once it is in effect."""
        if self.stopped.is_set():
            if op == "stop":
                return None
            if op == "stats":
                return self._stats()
            raise RuntimeError("the proxy is stopped")
        done, box = threading.Event(), {}
        self._calls.append((op, kwargs, done, box))
        try:
            self._wake_w.send(b"x")
        except OSError:  # wake buffer full: the loop is awake anyway
            pass
        if not done.wait(timeout):
            raise TimeoutError(f"chaos proxy did not run {op!r} within {timeout:g} s")
        if "error" in box:
            raise box["error"]
        return box.get("result")

    def _run_calls(self) -> None:
        for _ in range(len(self._calls)):
            op, kwargs, done, box = self._calls.popleft()
            try:
                box["result"] = getattr(self, f"_op_{op}")(**kwargs)
            except Exception as exc:  # noqa: BLE001 - handed to the caller
                box["error"] = exc
            done.set()

    def _op_configure(self, blackhole: bool = False, rate: float | None = None, delay: float = 0.0) -> dict:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive (use blackhole() to stop traffic)")
        if delay < 0:
            raise ValueError("delay must be >= 0")
        if rate is not None and rate != self.rate:
            now = time.monotonic()
            for conn in self.conns:
                for flow in conn.flows:
                    flow.tokens, flow.refilled = self._burst(rate), now
        self.blackholed, self.rate, self.latency = bool(blackhole), rate, float(delay)
        return self._mode()

    def _op_reset_all(self) -> int:
        conns = list(self.conns)
        for conn in conns:
            self._abort(conn)
        self.counters["resets"] += len(conns)
        return len(conns)

    def _op_retarget(self, host: str, port: int) -> None:
        self.target = _loopback((host, port), "target")

    def _op_stats(self) -> dict:
        return self._stats()

    def _op_stop(self) -> None:
        self._running = False

    def _stats(self) -> dict:
        return {**self.counters, "active": len(self.conns), "mode": self._mode()}

    def _mode(self) -> dict:
        return {"blackhole": self.blackholed, "rate": self.rate, "delay": self.latency}

    @staticmethod
    def _burst(rate: float) -> float:
        return max(256.0, rate / 20)  # 50 ms worth, so reads are not byte-sized

    # --- the loop -----------------------------------------------------------------------------
    def run(self) -> None:
        try:
            while self._running:
                timeout = self._plan(time.monotonic())
                for key, events in self.sel.select(timeout):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        self._drain_wake()
                    else:
                        conn, sock = key.data
                        if not conn.closed and events & _WRITE:
                            self._writable(conn, sock)
                        if not conn.closed and events & _READ:
                            self._readable(conn, sock)
                self._run_calls()
        finally:
            self._shutdown()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    def _plan(self, now: float) -> float:
        """Register what each socket waits for now; return how long the loop may sleep."""
        wake = now + MAX_TIMEOUT
        for conn in list(self.conns):
            if conn.upstream is None:
                if self.blackholed:  # as if the SYN were lost: dial once forwarding resumes
                    continue
                self._dial(conn)
                if conn.closed:
                    continue
            if conn.connecting:
                self._want(conn, conn.upstream, _WRITE)
                continue
            masks = {conn.client: 0, conn.upstream: 0}
            for flow in conn.flows:
                if flow.queue and not self.blackholed:
                    due = flow.queue[0][0]
                    if due <= now:
                        masks[flow.dst] |= _WRITE
                    else:
                        wake = min(wake, due)
                if self.blackholed or flow.eof_in or flow.pending >= MAX_PENDING:
                    continue
                if self.rate is not None:
                    burst = self._burst(self.rate)
                    flow.tokens = min(burst, flow.tokens + (now - flow.refilled) * self.rate)
                    flow.refilled = now
                    if flow.tokens < burst:
                        wake = min(wake, now + (burst - flow.tokens) / self.rate)
                        continue
                masks[flow.src] |= _READ
            for sock, mask in masks.items():
                self._want(conn, sock, mask)
        return max(0.0, wake - time.monotonic())

    def _want(self, conn: _Conn, sock, mask: int) -> None:
        current = self.masks.get(sock, 0)
        if mask == current:
            return
        if not mask:
            self.sel.unregister(sock)
            del self.masks[sock]
        elif not current:
            self.sel.register(sock, mask, (conn, sock))
            self.masks[sock] = mask
        else:
            self.sel.modify(sock, mask, (conn, sock))
            self.masks[sock] = mask

    def _accept(self) -> None:
        for _ in range(MAX_ACCEPTS):
            try:
                client, _peer = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # out of descriptors and the like: try again next turn
                return
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conns.add(_Conn(client))
            self.counters["accepted"] += 1

    def _dial(self, conn: _Conn) -> None:
        sock = socket.socket(_family(self.target[0]), socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = sock.connect_ex(self.target)
        if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            sock.close()
            self.counters["refused"] += 1
            self._abort(conn)
            return
        conn.upstream, conn.connecting = sock, True

    def _writable(self, conn: _Conn, sock) -> None:
        if conn.connecting and sock is conn.upstream:
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self.counters["refused"] += 1
                self._abort(conn)
                return
            conn.connecting = False
            tokens = self._burst(self.rate) if self.rate else 0.0
            conn.flows = [_Flow(conn.client, conn.upstream, "bytes_up", tokens),
                          _Flow(conn.upstream, conn.client, "bytes_down", tokens)]
            return
        for flow in conn.flows:
            if flow.dst is sock:
                self._flush(conn, flow, time.monotonic())

    def _readable(self, conn: _Conn, sock) -> None:
        for flow in conn.flows:
            if flow.src is not sock or flow.eof_in or self.blackholed:
                continue
            size = READ_CHUNK if self.rate is None else min(READ_CHUNK, int(flow.tokens))
            if size <= 0:
                return
            try:
                data = sock.recv(size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # reset by that side: reset the other side too
                self._abort(conn)
                return
            now = time.monotonic()
            if data:
                flow.pending += len(data)
                if self.rate is not None:
                    flow.tokens -= len(data)
            else:
                flow.eof_in = True
            flow.queue.append([now + self.latency, data or None])
            self._flush(conn, flow, now)
            return

    def _flush(self, conn: _Conn, flow: _Flow, now: float) -> None:
        """Write what is due, in order, until the queue is empty or the kernel is full."""
        for _ in range(len(flow.queue)):
            if self.blackholed or flow.queue[0][0] > now:
                return
            data = flow.queue[0][1]
            if data is None:
                flow.queue.popleft()
                flow.eof_out = True
                try:
                    flow.dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                if all(f.eof_out for f in conn.flows):
                    self._close(conn)
                return
            try:
                sent = flow.dst.send(memoryview(data)[flow.offset:])
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._abort(conn)
                return
            self.counters[flow.counter] += sent
            flow.pending -= sent
            flow.offset += sent
            if flow.offset < len(data):
                return
            flow.queue.popleft()
            flow.offset = 0

    def _forget(self, conn: _Conn) -> list:
        conn.closed = True
        self.conns.discard(conn)
        socks = [s for s in (conn.client, conn.upstream) if s is not None]
        for sock in socks:
            if self.masks.pop(sock, 0):
                self.sel.unregister(sock)
        self.counters["closed"] += 1
        return socks

    def _close(self, conn: _Conn) -> None:
        for sock in self._forget(conn):
            sock.close()

    def _abort(self, conn: _Conn) -> None:
        for sock in self._forget(conn):
            _rst_close(sock)

    def _shutdown(self) -> None:
        for conn in list(self.conns):
            self._abort(conn)
        for sock in (self.listener, self._wake_r, self._wake_w):
            try:
                self.sel.unregister(sock)
            except (KeyError, ValueError):
                pass
            sock.close()
        self.sel.close()
        self.stopped.set()
        for _op, _kwargs, done, box in list(self._calls):
            box["error"] = RuntimeError("the proxy is stopped")
            done.set()


def _gevent_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None:
        return False
    return any(monkey.is_module_patched(m) for m in ("socket", "select", "selectors", "threading", "time"))


class _ThreadBackend:
    def __init__(self, target, listen):
        self.engine = _Engine(target, listen)
        self.address = self.engine.address
        self.thread = threading.Thread(target=self.engine.run, name=f"chaos-proxy-{self.address[1]}", daemon=True)
        self.thread.start()

    def call(self, op: str, **kwargs):
        return self.engine.call(op, **kwargs)

    def close(self) -> None:
        self.engine.call("stop")
        self.thread.join(CALL_TIMEOUT)


class _ProcessBackend:
    """The same engine in `python -m tests.chaos.proxies`, one JSON line per call and reply."""

    def __init__(self, target, listen):
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.chaos.proxies", "--target", f"{target[0]}:{target[1]}",
             "--listen", f"{listen[0]}:{listen[1]}"],
            cwd=root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._buffer = b""
        self._lock = threading.Lock()
        try:
            hello = self._reply()
        except Exception:
            self.proc.kill()
            self.proc.wait(CALL_TIMEOUT)
            raise
        self.address = tuple(hello["address"])

    def _reply(self) -> dict:
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + CALL_TIMEOUT
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"chaos proxy process gave no answer within {CALL_TIMEOUT:g} s")
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    err = self.proc.stderr.read().decode(errors="replace").strip()
                    raise RuntimeError(f"chaos proxy process exited: {err.splitlines()[-1] if err else '?'}")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"chaos proxy: {reply['error']}")
        return reply

    def call(self, op: str, **kwargs):
        with self._lock:
            self.proc.stdin.write(json.dumps({"op": op, "kwargs": kwargs}).encode() + b"\n")
            self.proc.stdin.flush()
            return self._reply().get("result")

    def close(self) -> None:
        try:
            self.call("stop")
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(CALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(CALL_TIMEOUT)
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()


class ChaosProxy:
    """See the module docstring. `backend`: "auto" (thread unless gevent patched us), "thread", "process"."""

    def __init__(self, target, listen=("127.0.0.1", 0), backend: str = "auto"):
        self.target = _loopback(target, "target")
        self.listen = _loopback(listen, "listen address")
        if backend == "auto":
            backend = "process" if _gevent_patched() else "thread"
        if backend not in ("thread", "process"):
            raise ValueError(f"unknown backend {backend!r}")
        self.backend_name = backend
        self._backend = None

    def start(self) -> "ChaosProxy":
        if self._backend is None:
            cls = _ThreadBackend if self.backend_name == "thread" else _ProcessBackend
            self._backend = cls(self.target, self.listen)
        return self

    @property
    def address(self) -> tuple:
        return self._started().address

    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def hostport(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    @property
    def multiaddr(self) -> str:
        """The proxy as the start of an Ockam route: /ip4/127.0.0.1/tcp/PORT."""
        return f"/ip4/{self.address[0]}/tcp/{self.address[1]}"

    def _started(self):
        if self._backend is None:
            raise RuntimeError("ChaosProxy.start() first")
        return self._backend

    def configure(self, blackhole: bool = False, rate: float | None = None, delay: float = 0.0) -> dict:
        """Set every knob at once (the named modes below set one and clear the others)."""
        return self._started().call("configure", blackhole=blackhole, rate=rate, delay=delay)

    def passthrough(self) -> dict:
        return self.configure()

    def blackhole(self) -> dict:
        return self.configure(blackhole=True)

    def throttle(self, bytes_per_second: float) -> dict:
        return self.configure(rate=float(bytes_per_second))

    def delay(self, seconds: float) -> dict:
        return self.configure(delay=float(seconds))

    def reset_all(self) -> int:
        """RST every current connection (both sides); returns how many. New ones are accepted."""
        return self._started().call("reset_all")

    def retarget(self, target) -> None:
        """Send future connections to another loopback address."""
        host, port = _loopback(target, "target")
        self._started().call("retarget", host=host, port=port)
        self.target = (host, port)

    def stats(self) -> dict:
        return self._started().call("stats")

    @property
    def bytes_up(self) -> int:
        return self.stats()["bytes_up"]

    @property
    def bytes_down(self) -> int:
        return self.stats()["bytes_down"]

    @property
    def accepted(self) -> int:
        return self.stats()["accepted"]

    @property
    def active(self) -> int:
        return self.stats()["active"]

    def stop(self) -> None:
        """Stop listening and reset every connection. Idempotent."""
        backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()

    def __enter__(self) -> "ChaosProxy":
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()


def _hostport(text: str) -> tuple:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def main(argv=None) -> int:
    """The process backend: print {"address": [h, p]}, then answer one JSON line per request."""
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.proxies")
    parser.add_argument("--target", required=True, type=_hostport)
    parser.add_argument("--listen", default=("127.0.0.1", 0), type=_hostport)
    args = parser.parse_args(argv)
    engine = _Engine(args.target, args.listen)
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    out = sys.stdout
    out.write(json.dumps({"address": list(engine.address)}) + "\n")
    out.flush()
    for line in sys.stdin:  # ends when the parent closes our stdin (or dies)
        request = {}
        try:
            request = json.loads(line)
            reply = {"result": engine.call(request["op"], **request.get("kwargs", {}))}
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
        if request.get("op") == "stop":
            break
    engine.call("stop")
    thread.join(CALL_TIMEOUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
