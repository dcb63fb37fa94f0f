"""A small hostile peer: blocking sockets, the standard library and our own wire codecs.

It speaks to a node's TCP listener the way another node would (version byte, then u32-BE
framed transport messages) and misbehaves on purpose: routes of 64 hops, frames that never
end, connections that never speak, relay registrations by the hundred, handshake Inits by the
thousand. Every connection binds a chosen source address (127.0.0.2, 127.0.0.3, ...) so that
per-source limits hit the attacker, not the legitimate nodes on 127.0.0.1.

Replies come back on the socket because the node prepends its connection's address to the
return route we give (e.g. `(Address.local("attacker"),)`): a reply arrives as a frame whose
onward route is that return route.

Also: open fd count and RSS of a process, from /proc. Used by tests/hostile and bench/hostile.py.
"""

from __future__ import annotations

import os
import selectors
import socket
import threading
import time
from typing import NamedTuple

from appliance.secure.suites import default_suite
from appliance.wire import bare
from appliance.wire import relay as relay_wire
from appliance.wire import secure_channel as sc_wire
from appliance.wire.address import Address
from appliance.wire.errors import WireError
from appliance.wire.framing import DEFAULT_MAX_FRAME, PROTOCOL_VERSION_BYTE, FrameDecoder, encode_frame_header
from appliance.wire.transport import TransportMessage, encode_frame
from bench.net import rss_kb

MAX_FRAME = DEFAULT_MAX_FRAME
ATTACKER = Address.local("attacker")
FORWARDING_SERVICE = Address.local("forwarding_service")


def hops(n: int, prefix: str = "h") -> tuple:
    """A route of n distinct local addresses (h0, h1, ...)."""
    return tuple(Address.local(f"{prefix}{i}") for i in range(n))


# --- relay registration ---------------------------------------------------------------------------


def registration_request(name: str, secret: bytes = b"") -> bytes:
    return relay_wire.encode_request(relay_wire.relay_address(name), secret)


# --- secure channel Init -------------------------------------------------------------------------


def handshake_init(suite_id: int | None = None) -> bytes:
    """An Init whose Noise message 1 is 32 random bytes: that is all message 1 is (the
    initiator's ephemeral public key, and an empty payload in the clear), and X25519 takes
    any 32 bytes, so the responder does its full share of work for each."""
    return sc_wire.encode_init(default_suite().id if suite_id is None else suite_id, os.urandom(32))


def handshake_reply_kind(payload: bytes) -> str:
    """'response', 'refusal: <reason>' or 'other'."""
    if payload[:1] == bytes((sc_wire.RESPONSE,)):
        return "response"
    if payload[:1] == bytes((sc_wire.REFUSE,)):
        try:
            return "refusal: " + bare.decode_string(payload[1:])
        except WireError:
            return "refusal: (undecodable)"
    return "other"


# --- one connection ---------------------------------------------------------------------------------


class Received(NamedTuple):
    onward: tuple
    return_route: tuple
    payload: bytes


class Peer:
    """One TCP connection to a node's listener, from `source`. Frames the node sends are
    decoded by a reader thread into `received` (once `start_reader()` ran, or lazily by
    `wait_for`), so the node never blocks writing to us."""

    def __init__(self, port: int, source: str = "127.0.0.2", host: str = "127.0.0.1", timeout: float = 5.0,
                 version: bool = True):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((source, 0))
        self.timeout = timeout  # bounds every send (and the connect)
        self.sock.settimeout(timeout)
        self.received: list[Received] = []
        self.undecodable = 0
        self.last_received_at: float | None = None  # monotonic time of the latest message
        self.eof = threading.Event()  # the node closed (or reset) the connection
        self.eof_at: float | None = None
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None
        self._closed = False
        try:
            self.sock.connect((host, port))
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (ConnectionResetError, BrokenPipeError):  # refused at once, before connect returned
            self.eof_at = time.monotonic()
            self.eof.set()
            return
        if version:
            self.send_raw(PROTOCOL_VERSION_BYTE)

    # --- sending ---------------------------------------------------------------------------------
    def send_raw(self, data: bytes) -> bool:
        """False when the node already closed the connection."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            self._mark_eof()
            return False

    def send_frame(self, body: bytes) -> bool:
        return self.send_raw(encode_frame_header(len(body)) + body)

    def send_message(self, onward, return_route=(ATTACKER,), payload: bytes = b"") -> bool:
        return self.send_raw(encode_frame(tuple(onward), tuple(return_route), payload))

    def send_partial(self, claim: int = MAX_FRAME, body: int = MAX_FRAME - 1) -> bool:
        """A frame header claiming `claim` bytes, then only `body` of them."""
        return self.send_raw(encode_frame_header(claim) + bytes(body))

    def heartbeat(self) -> bool:
        return self.send_frame(b"")

    # --- receiving -------------------------------------------------------------------------------
    def start_reader(self) -> "Peer":
        if self._reader is None:
            self._reader = threading.Thread(target=self._read_loop, daemon=True)
            self._reader.start()
        return self

    def _read_loop(self) -> None:
        decoder = FrameDecoder(MAX_FRAME)
        try:
            while not self._closed:
                try:
                    data = self.sock.recv(256 * 1024)
                except socket.timeout:
                    continue  # the socket's timeout bounds our sends; a quiet node is no EOF
                if not data:
                    break
                try:
                    frames = decoder.feed(data)
                except WireError:
                    break
                for frame in frames:
                    if not frame:
                        continue  # a heartbeat
                    try:
                        msg = TransportMessage.decode(bytes(frame))
                    except WireError:
                        self.undecodable += 1
                        continue
                    with self._cond:
                        self.last_received_at = time.monotonic()
                        self.received.append(Received(*msg))
                        self._cond.notify_all()
        except OSError:
            pass
        finally:
            self._mark_eof()

    def _mark_eof(self) -> None:
        if not self.eof.is_set():
            self.eof_at = time.monotonic()
            self.eof.set()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, predicate, timeout: float = 5.0) -> list[Received]:
        """Messages received so far that satisfy `predicate`, once at least one does (or the
        timeout passed, or the connection ended)."""
        return self.wait_count(predicate, 1, timeout)

    def wait_count(self, predicate, count: int, timeout: float) -> list[Received]:
        """Messages received so far that satisfy `predicate`, once `count` do (or the timeout
        passed, or the connection ended). Each message is looked at once."""
        self.start_reader()
        deadline = time.monotonic() + timeout
        found, scanned = [], 0
        with self._cond:
            while True:
                fresh, scanned = self.received[scanned:], len(self.received)
                found += [m for m in fresh if predicate(m)]
                remaining = deadline - time.monotonic()
                if len(found) >= count or remaining <= 0 or self.eof.is_set():
                    return found
                self._cond.wait(remaining)

    def to(self, address: Address):
        """A predicate: messages whose onward route is (address,)."""
        return lambda m: m.onward == (address,)

    def echo(self, payload: bytes = b"probe", via: tuple = (), timeout: float = 5.0) -> bool:
        """Does `via + echo` answer on this connection? Also a barrier: the node handles one
        connection's messages in order, so everything sent before has been handled."""
        reply_to = Address.random_local()
        if not self.send_message(tuple(via) + (Address.local("echo"),), (reply_to,), payload):
            return False
        replies = self.wait_for(self.to(reply_to), timeout)
        return bool(replies) and replies[0].payload == payload

    # --- relays ------------------------------------------------------------------------------------
    def register(self, name: str, secret: bytes = b"", via: tuple = (), reply_to: Address | None = None,
                 timeout: float = 5.0) -> relay_wire.RelayReply | None:
        """Register `name` at `via + forwarding_service` (via: e.g. (forward_to_n3,) to reach
        the node behind a relay); the reply, or None when none came within `timeout`."""
        reply_to = reply_to or Address.random_local()
        self.start_reader()
        if not self.send_message(tuple(via) + (FORWARDING_SERVICE,), (reply_to,), registration_request(name, secret)):
            return None
        replies = self.wait_for(self.to(reply_to), timeout)
        return relay_wire.RelayReply.decode(replies[0].payload) if replies else None

    def register_many(self, names, timeout: float = 10.0) -> list:
        """Send one registration per name on this connection (all at once), then collect the
        replies, in the order of `names`; None for a name that got no reply."""
        self.start_reader()
        addresses = [Address.local(f"reply-{i}") for i in range(len(names))]
        batch = b"".join(encode_frame((FORWARDING_SERVICE,), (a,), registration_request(n))
                         for a, n in zip(addresses, names))
        self.send_raw(batch)
        wanted = set(addresses)
        self.wait_count(lambda m: m.onward and m.onward[0] in wanted and len(m.onward) == 1, len(names), timeout)
        by_address = {}
        with self._cond:
            for m in self.received:
                if len(m.onward) == 1 and m.onward[0] in wanted:
                    by_address.setdefault(m.onward[0], m)
        return [relay_wire.RelayReply.decode(by_address[a].payload) if a in by_address else None for a in addresses]

    # --- life ----------------------------------------------------------------------------------------
    def is_closed(self) -> bool:
        """Has the node closed this connection? (Reads and discards what is pending.)"""
        if self._reader is not None:
            return self.eof.is_set()
        try:
            self.sock.setblocking(False)
            while True:
                data = self.sock.recv(65536)
                if not data:
                    self._mark_eof()
                    return True
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            self._mark_eof()
            return True
        finally:
            try:
                self.sock.settimeout(self.timeout)
            except OSError:
                pass

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self.sock.close()
            except OSError:
                pass


# --- peers that never read -----------------------------------------------------------------------


class Flood:
    """Peers that each send `frame` again and again for `seconds`, reading nothing."""

    def __init__(self, peers, frame: bytes, seconds: float):
        self.peers, self.frame, self.seconds = peers, frame, seconds
        self.sent = [0] * len(peers)
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(len(peers))]

    def _run(self, index: int) -> None:
        peer = self.peers[index]
        peer.sock.settimeout(0.5)
        deadline = time.monotonic() + self.seconds
        view = memoryview(self.frame)
        while time.monotonic() < deadline:
            try:
                sent = peer.sock.send(view)
            except socket.timeout:
                continue
            except OSError:
                return  # cut off
            self.sent[index] += sent
            view = view[sent:] or memoryview(self.frame)

    def run(self, sample) -> int:
        """Flood, calling sample() every 0.1 s meanwhile; the peak of what it returned."""
        for t in self._threads:
            t.start()
        peak = 0
        while any(t.is_alive() for t in self._threads):
            peak = max(peak, sample())
            time.sleep(0.1)
        return max(peak, sample())


def unread(peer: Peer) -> Peer:
    """A peer whose receive buffer is small: the node's answers pile up at the node."""
    peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return peer


def register_without_reader(peer: Peer, name: str) -> bool:
    """Register `name` and read until its reply, in this thread: no reader is left running."""
    reply_to = Address.local("owner")
    peer.send_message((FORWARDING_SERVICE,), (reply_to,), registration_request(name))
    decoder = FrameDecoder(MAX_FRAME)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for frame in decoder.feed(peer.sock.recv(65536)):
            if frame and TransportMessage.decode(bytes(frame)).onward == (reply_to,):
                return relay_wire.RelayReply.decode(TransportMessage.decode(bytes(frame)).payload).ok
    return False


def connect_many(port: int, count: int, source: str = "127.0.0.2", version: bool = True,
                 timeout: float = 10.0) -> list[Peer]:
    """`count` connections (that send the version byte, or nothing at all), opened in order."""
    peers = []
    try:
        for _ in range(count):
            peers.append(Peer(port, source, version=version, timeout=timeout))
    except OSError:
        close_all(peers)
        raise
    return peers


def close_all(peers) -> None:
    for peer in peers:
        peer.close()


def wait_closed(peers, timeout: float) -> list[Peer]:
    """Watch every peer's socket (epoll, so thousands are fine), reading and discarding what
    the node sends, until each was closed by the node or `timeout` passed. Returns those
    closed; each has `eof_at` set. Peers with a reader thread are watched through it."""
    deadline = time.monotonic() + timeout
    selector = selectors.DefaultSelector()
    pending = set()
    for peer in peers:
        if peer.eof.is_set() or peer._reader is not None:
            continue
        peer.sock.setblocking(False)
        selector.register(peer.sock, selectors.EVENT_READ, peer)
        pending.add(peer)
    try:
        while time.monotonic() < deadline:
            threaded_open = [p for p in peers if p._reader is not None and not p.eof.is_set()]
            if not pending and not threaded_open:
                break
            for key, _ in selector.select(min(0.05, max(0.0, deadline - time.monotonic()))):
                peer = key.data
                try:
                    data = peer.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    peer._mark_eof()
                    selector.unregister(peer.sock)
                    pending.discard(peer)
    finally:
        for peer in pending:
            try:
                selector.unregister(peer.sock)
            except (KeyError, ValueError):
                pass
        selector.close()
        for peer in peers:
            if not peer._closed and peer._reader is None:
                try:
                    peer.sock.settimeout(peer.timeout)
                except OSError:
                    pass
    return [p for p in peers if p.eof.is_set()]


class Every:
    """A thread that calls `tick()` every `interval` s, from `with` until its end."""

    def __init__(self, interval: float):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self.tick() is False:
                return

    def tick(self):
        raise NotImplementedError


class Heartbeats(Every):
    """Sends an empty frame on each peer every `interval` s: connections that look alive
    and route nothing."""

    def __init__(self, peers, interval: float = 0.5):
        super().__init__(interval)
        self.peers = peers

    def tick(self) -> None:
        for peer in self.peers:
            if not peer.eof.is_set():
                peer.heartbeat()


class Refiller(threading.Thread):
    """Another bot that takes every slot that frees, as a botnet does: it opens a connection
    every `interval` s, routes one echo on it and then only heartbeats."""

    def __init__(self, port: int, source: str, interval: float = 0.05):
        super().__init__(daemon=True)
        self.port, self.source, self.interval = port, source, interval
        self.peers: list[Peer] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with Heartbeats(self.peers, interval=0.5):
            while not self.stop.wait(self.interval):
                try:
                    peer = Peer(self.port, self.source, timeout=2)
                except OSError:
                    continue
                if peer.send_message((Address.local("echo"),)):
                    self.peers.append(peer)

    def __enter__(self) -> "Refiller":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.join(10)
        close_all(self.peers)


# --- handshake floods ----------------------------------------------------------------------------


class InitFloodResult(NamedTuple):
    sent: int
    responses: int
    refusals: list  # reason texts
    other: int
    seconds: float  # time to send them all
    per_connection_responses: list
    last_answer_after: float  # seconds from the first Init sent to the last answer received


def flood_inits(port: int, count: int, connections: int, source: str = "127.0.0.4",
                onward: tuple = (Address.local("api"),), wait: float = 5.0,
                deadline: float | None = None) -> InitFloodResult:
    """Send `count` handshake Inits spread over `connections` connections (each from a
    distinct reply address, as distinct initiators would), as fast as the sockets take
    them; then wait up to `wait` s for each one's answer (a Response or a refusal; an Init
    the node drops silently gets none). `deadline` (monotonic) stops sending early."""
    peers = [Peer(port, source).start_reader() for _ in range(connections)]
    try:
        started = time.monotonic()
        sent = 0
        per = [0] * connections
        batch = 50
        while sent < count and (deadline is None or time.monotonic() < deadline):
            for i, peer in enumerate(peers):
                n = min(batch, count - sent)
                if n <= 0:
                    break
                frames = b"".join(encode_frame(tuple(onward), (Address.local(f"i{per[i] + k}"),), handshake_init())
                                  for k in range(n))
                peer.send_raw(frames)
                per[i] += n
                sent += n
        seconds = time.monotonic() - started
        answered = lambda m: len(m.onward) == 1 and m.onward[0].inner.startswith(b"i")  # noqa: E731
        stop = time.monotonic() + wait
        for peer, expected in zip(peers, per):
            peer.wait_count(answered, expected, max(0.05, stop - time.monotonic()))
        responses, refusals, other, per_conn = 0, [], 0, []
        for peer in peers:
            mine = 0
            for m in list(peer.received):
                if not answered(m):
                    continue
                kind = handshake_reply_kind(m.payload)
                if kind == "response":
                    responses += 1
                    mine += 1
                elif kind.startswith("refusal: "):
                    refusals.append(kind[len("refusal: "):])
                else:
                    other += 1
            per_conn.append(mine)
        last = max((p.last_received_at for p in peers if p.last_received_at), default=started)
        return InitFloodResult(sent, responses, refusals, other, seconds, per_conn, last - started)
    finally:
        close_all(peers)


# --- process facts -------------------------------------------------------------------------------


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] not in ("Z", "X")
    except (OSError, IndexError):
        return False


class RssSampler(Every):
    """Samples a pid's RSS every `interval` s; `peak_kb` is the largest seen."""

    def __init__(self, pid: int, interval: float = 0.1):
        super().__init__(interval)
        self.pid = pid
        self.peak_kb = rss_kb(pid)

    def tick(self):
        try:
            self.peak_kb = max(self.peak_kb, rss_kb(self.pid))
        except OSError:
            return False


# --- the victim's side: a download that spans an attack -----------------------------------------


class Transfer:
    """A download (`GET n seed\\n` to a sha256 server) through `address`, in a thread, held
    open for as long as an attack lasts: until `attack_over` is set it reads slowly and
    always leaves its last 64 KiB unread, so the stream is established before the attack
    and still open when it ends; then it reads the rest at full speed. It gives up when no
    byte comes for `stall` seconds. `result()` is (bytes, sha256 hex)."""

    TAIL = 64 * 1024

    def __init__(self, address, n: int = 4 << 20, seed: str = "transfer", stall: float = 8.0,
                 timeout: float = 120.0):
        self.address, self.n, self.seed, self.stall, self.timeout = tuple(address), n, seed, stall, timeout
        self.attack_over = threading.Event()
        self.started = threading.Event()  # the first bytes arrived: the stream is established
        self.error: str | None = None
        self._result = (0, "")
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Transfer":
        self._thread.start()
        if not self.started.wait(15) or self.error:
            raise AssertionError(f"the download through {self.address} did not start: {self.error or 'no byte'}")
        return self

    def __exit__(self, *exc) -> None:
        self.attack_over.set()

    def _run(self) -> None:
        import hashlib

        digest, received = hashlib.sha256(), 0
        deadline = time.monotonic() + self.timeout
        try:
            with socket.create_connection(self.address, timeout=self.stall) as sock:
                sock.sendall(f"GET {self.n} {self.seed}\n".encode())
                while received < self.n and time.monotonic() < deadline:
                    paced = not self.attack_over.is_set()
                    if paced and received >= self.n - self.TAIL:
                        self.attack_over.wait(max(0.0, deadline - time.monotonic()))
                        continue
                    left = self.n - received
                    want = min(16 * 1024, left - self.TAIL) if paced else min(256 * 1024, left)
                    try:
                        data = sock.recv(want)
                    except socket.timeout:
                        self.error = f"no byte for {self.stall:g} s"
                        break
                    if not data:
                        self.error = "the stream ended early"
                        break
                    digest.update(data)
                    received += len(data)
                    self.started.set()
                    if paced:
                        self.attack_over.wait(0.01)  # slowly, while the attack goes on
        except OSError as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._result = (received, digest.hexdigest())
            self.started.set()

    def result(self) -> tuple:
        self.attack_over.set()
        self._thread.join(self.timeout + 5)
        return self._result
