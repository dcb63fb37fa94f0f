"""Issue 11's attack table, measured: `python -m bench.hostile`

    python -m bench.hostile [--only 1,3,...] [--quick] [--out FILE]

For each attack row, a fresh relay/edge/client topology of real node processes (the one of
tests/hostile, default limits), then, around the attack:
- a download (sha256 checked) through the portal that starts before the attack and is held
  open until it ends;
- a round-trip sampler: 32-byte echoes through the same portal, before the attack (200) and
  during it (paced, up to 1000): median and p99 in ms, and failures;
- the relay's RSS before, at its peak during, and 12 s after the attack (attack connections
  closed);
- the relay link: how many times the edge had to register n3 again (0 = never lost);
- who owns forward_to_n3 at the end (the edge on 127.0.0.1, or an attacker address);
and what the attack itself got (replies, closures, registrations, fds). Prints a Markdown
table like the issue's and writes JSON (default bench/results/hostile.json).

Full-size attacks: 64-hop messages every 0.2 s for 15 s, the hijack flood, 300 partial
frames of 1 MiB - 1, 2000 idle connections, 20 000 handshake Inits in 5 s, 50 000
registrations from one connection, 5000 fuzzed frames. It reports; it gates nothing.
Set OCKAM_BIN to measure another build of the CLI.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from appliance.wire import portal as portal_wire
from appliance.wire.address import Address
from tests.chaos.conftest import Sha256Server, expected_sha256
from tests.e2e.conftest import Ockam, ThreadedServer
from tests.helpers import echo_until_eof
from tests.hostile import attacker as atk
from tests.hostile.conftest import RELAY_NAME, Net

FORWARD = Address.local(f"forward_to_{RELAY_NAME}")
ECHO = Address.local("echo")
AFTER = 12.0  # seconds after an attack before RSS is read: past the next malloc_trim (every 10 s)


# --- the service behind the outlet: downloads and echoes ---------------------------------------


class MixedTarget:
    """`GET <n> <seed>\\n` is answered as the tests' sha256 server does; anything else is echoed."""

    def __init__(self):
        self.server = ThreadedServer(self._handle)
        self.sha = Sha256Server(self.server)
        self.hostport = f"127.0.0.1:{self.server.port}"

    def _handle(self, conn) -> None:
        conn.settimeout(60)
        head = conn.recv(4, socket.MSG_PEEK | socket.MSG_WAITALL)
        if head == b"GET ":
            self.sha.handle(conn)
        else:
            echo_until_eof(conn)

    def close(self) -> None:
        self.server.close()


# --- measurements around an attack --------------------------------------------------------------


class RoundTrips:
    """32-byte echoes through `address` on one connection; a failed or 2 s slow one counts as
    a failure and the next uses a new connection."""

    def __init__(self, address):
        self.address = tuple(address)
        self.samples: list[float] = []
        self.failures = 0
        self._sock = None
        self._stop = threading.Event()
        self._thread = None

    def _one(self) -> None:
        payload = b"r" * 32
        started = time.monotonic()
        try:
            if self._sock is None:
                self._sock = socket.create_connection(self.address, timeout=2.0)
            self._sock.sendall(payload)
            got = b""
            while len(got) < len(payload):
                data = self._sock.recv(len(payload) - len(got))
                if not data:
                    raise OSError("closed")
                got += data
            self.samples.append((time.monotonic() - started) * 1000)
        except OSError:
            self.failures += 1
            if self._sock is not None:
                self._sock.close()
            self._sock = None

    def run(self, count: int) -> dict:
        for _ in range(count):
            self._one()
        return self.summary()

    def __enter__(self) -> "RoundTrips":
        self.samples, self.failures = [], 0
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set() and len(self.samples) + self.failures < 1000:
            self._one()
            self._stop.wait(0.01)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def summary(self) -> dict:
        s = sorted(self.samples)
        return {"n": len(s), "failures": self.failures,
                "median_ms": round(statistics.median(s), 1) if s else None,
                "p99_ms": round(s[math.ceil(len(s) * 0.99) - 1], 1) if s else None}  # nearest rank


def owner(net: Net) -> str:
    """Who forward_to_n3 at the relay forwards to: the edge (127.0.0.1), an attacker address, or none."""
    routes = {r["name"]: r["remote_route"] for r in net.incoming_relays("relay")}
    route = routes.get(f"forward_to_{RELAY_NAME}")
    if route is None:
        return "none"
    first = route.split(" => ")[0]
    for t in net.show("relay")["transports"]:
        if t.get("worker_address") == first:
            ip = t["socket_address"].rsplit(":", 1)[0]
            return "edge" if ip == "127.0.0.1" else f"attacker ({ip})"
    return f"? ({first})"


def measure(name: str, attack, options: dict | None = None, transfer_mb: int = 8) -> dict:
    """A fresh topology in its own OCKAM_HOME, `attack(net) -> (result text, cleanup)` in the
    middle of the measurements; the row's numbers."""
    home = tempfile.mkdtemp(prefix="ockam-hostile-", dir="/tmp")
    ockam, target, net = Ockam(home), MixedTarget(), None
    row: dict = {"attack": name}
    try:
        net = Net(ockam, target, **(options or {}))
        relay_pid = net.pid("relay")
        row["rtt_before"] = RoundTrips(net.inlet).run(200)
        rss_before = atk.rss_kb(relay_pid)
        transfer = atk.Transfer(net.inlet, n=transfer_mb << 20, seed="bench", stall=15.0, timeout=300.0)
        cleanup = None
        with atk.RssSampler(relay_pid) as rss, transfer, RoundTrips(net.inlet) as during:
            started = time.monotonic()
            try:
                row["result"], cleanup = attack(net)
            except Exception as exc:  # noqa: BLE001 - one row failing must not hide the others
                row["result"], cleanup = f"attack failed: {type(exc).__name__}: {exc}", None
            row["attack_s"] = round(time.monotonic() - started, 1)
        try:  # at the end of the attack, before its connections close
            relay = net.edge_relay()
            row["relay_reconnects"] = f"{relay['registrations'] - 1}" + (
                " (edge unregistered)" if relay["remote_route"] == "(reconnecting)" else "")
            row["n3_owner"] = owner(net)
        except AssertionError as exc:
            row["relay_reconnects"], row["n3_owner"] = None, f"? ({exc})"
        row["rtt_during"] = during.summary()
        got = transfer.result()
        row["download"] = ("ok" if got == (transfer.n, expected_sha256(transfer.n, transfer.seed))
                           else f"FAILED: {got[0] >> 10} of {transfer.n >> 10} KiB "
                                f"({transfer.error or 'wrong sha256'})")
        if cleanup is not None:
            said = cleanup()  # a cleanup may measure something of its own (the edge restarted)
            if said:
                row["result"] += f"; {said}"
        time.sleep(AFTER)  # what the relay keeps once the attack is over
        row["rss_mb"] = [round(rss_before / 1024), round(rss.peak_kb / 1024), round(atk.rss_kb(relay_pid) / 1024)]
        row["relay_alive"] = atk.pid_alive(relay_pid)
        row["relay_counters"] = net.counters("relay") if row["relay_alive"] else {}
    except Exception as exc:  # noqa: BLE001
        row.setdefault("result", f"setup failed: {type(exc).__name__}: {exc}")
    finally:
        if net is not None:
            net.kill_all()
        ockam.run("node", "delete", "--all", check=False)
        target.close()
        shutil.rmtree(home, ignore_errors=True)
    return row


# --- the attacks (each: net -> (result text, cleanup or None)) ------------------------------------


def poison_64_hops(seconds: float = 15.0, every: float = 0.2):
    def attack(net: Net):
        peer = net.attacker("127.0.0.2").start_reader()
        sent, stop = 0, time.monotonic() + seconds
        while time.monotonic() < stop:
            if peer.eof.is_set():
                peer.close()
                peer = net.attacker("127.0.0.2").start_reader()
            sent += peer.send_message((FORWARD, ECHO), atk.hops(64), b"poison")
            time.sleep(every)
        counters = net.counters("relay")
        return (f"{sent} messages; relay dropped_route_too_long {counters.get('dropped_route_too_long', 0)}",
                peer.close)
    return attack


def hijack(seconds: float = 3.0):
    def attack(net: Net):
        peer = net.attacker("127.0.0.2").start_reader()
        started, stop = time.monotonic(), time.monotonic() + seconds
        attempts, got_at, texts = 0, None, set()
        while time.monotonic() < stop and got_at is None:
            peer.send_message((FORWARD, ECHO), atk.hops(64), b"poison")
            reply = peer.register(RELAY_NAME, timeout=1.0)
            attempts += 1
            if reply is not None and reply.ok:
                got_at = time.monotonic() - started
            elif reply is not None:
                texts.add(reply.text)
        inlet_ok = net.fetch_ok(n=64 * 1024, seed="victim", timeout=3.0)
        pings = sum(1 for m in peer.received if m.payload == portal_wire.PING)
        held = f"attacker held forward_to_n3 after {got_at * 1000:.0f} ms" if got_at is not None else "never held"
        return (f"{attempts} attempts, {held}; refusals: {sorted(texts) or '-'}; then a plain inlet download "
                f"{'worked' if inlet_ok else 'FAILED'}, {pings} portal Pings reached the attacker", peer.close)
    return attack


def partial_frames(count: int = 300, hold: float = 12.0):
    """Hold `hold` s (past the default frame_deadline of 10 s) or until all are closed."""
    def attack(net: Net):
        peers = []
        for i in range(count):
            peer = atk.Peer(net.relay_port, f"127.0.{2 + i // 200}.{2 + i % 200}")
            peer.send_partial(atk.MAX_FRAME, atk.MAX_FRAME - 1)
            peers.append(peer)
        closed = atk.wait_closed(peers, timeout=hold)
        return (f"{count} x (1 MiB - 1) sent; closed by the relay within {hold:g} s: {len(closed)}",
                lambda: atk.close_all(peers))
    return attack


def idle_connections(count: int = 2000, hold: float = 35.0, sources: int = 10):
    """Half send nothing, half the version byte and heartbeats; spread over `sources`
    addresses (so a per-source limit alone does not decide). Held `hold` s (past the
    default idle_timeout of 30 s) or until all are closed."""
    def attack(net: Net):
        per = count // sources
        silent, beating = [], []
        for s in range(sources):
            source = f"127.0.3.{2 + s}"
            silent += atk.connect_many(net.relay_port, per // 2, source, version=False)
            beating += atk.connect_many(net.relay_port, per - per // 2, source, version=True)
        opened = time.monotonic()
        at_once = atk.wait_closed(silent + beating, timeout=1.0)
        with atk.Heartbeats(beating, interval=1.0):
            atk.wait_closed(silent + beating, timeout=max(0.0, hold - (time.monotonic() - opened)))
        closed_s = sorted(p.eof_at - opened for p in silent + beating if p.eof.is_set())
        when = f", after {closed_s[0]:.0f}-{closed_s[-1]:.0f} s" if closed_s else ""
        return (f"{count} open ({sources} sources); closed at once {len(at_once)}; closed within {hold:g} s: "
                f"silent {sum(p.eof.is_set() for p in silent)}/{len(silent)}, heartbeating "
                f"{sum(p.eof.is_set() for p in beating)}/{len(beating)}{when}",
                lambda: atk.close_all(silent + beating))
    return attack


def handshake_inits(count: int = 20000, seconds: float = 5.0, connections: int = 50):
    def attack(net: Net):
        deadline = time.monotonic() + seconds
        peers = [atk.Peer(net.relay_port, f"127.0.4.{2 + i % 50}").start_reader() for i in range(connections)]
        sent, tick = 0, 0.1
        per_tick = max(1, int(count * tick / seconds))
        next_tick = time.monotonic()
        while sent < count and time.monotonic() < deadline + 1.0:
            for _ in range(per_tick):
                if sent >= count:
                    break
                peers[sent % connections].send_message((Address.local("api"),), (Address.local(f"i{sent}"),),
                                                      atk.handshake_init())
                sent += 1
            next_tick += tick
            time.sleep(max(0.0, next_tick - time.monotonic()))
        answered = lambda m: len(m.onward) == 1 and m.onward[0].inner.startswith(b"i")  # noqa: E731
        stop = time.monotonic() + 5.0  # for the answers still on their way
        while time.monotonic() < stop and sum(len([m for m in p.received if answered(m)]) for p in peers) < sent:
            time.sleep(0.1)
        kinds = [atk.handshake_reply_kind(m.payload) for p in peers for m in list(p.received) if answered(m)]
        responses = kinds.count("response")
        refusals = len([k for k in kinds if k.startswith("refusal")])
        refused = net.counters("relay").get("handshakes_refused", 0)
        return (f"{sent} Inits in {seconds:g} s: {responses} Responses, {refusals} refusals, "
                f"{sent - responses - refusals} unanswered; relay handshakes_refused {refused}",
                lambda: atk.close_all(peers))
    return attack


def registrations(count: int = 50000):
    def attack(net: Net):
        peer = net.attacker("127.0.0.2")
        replies = []
        for start in range(0, count, 5000):
            names = [f"flood-{i}" for i in range(start, min(count, start + 5000))]
            replies += peer.register_many(names, timeout=60.0)
            with peer._cond:  # keep memory flat: forget what was counted
                peer.received.clear()
        ok = sum(1 for r in replies if r is not None and r.ok)
        reasons = sorted({r.text for r in replies if r is not None and not r.ok})
        return (f"{count} sent: {ok} accepted, {sum(1 for r in replies if r is not None and not r.ok)} refused "
                f"{reasons[:2] or ''}, {sum(1 for r in replies if r is None)} unanswered", peer.close)
    return attack


def fuzzed_frames(count: int = 5000):
    def attack(net: Net):
        from tests.hostile.test_fuzz import fuzz

        fds_before = net.fds("edge")
        fuzzer = fuzz(net.relay_port, count, derandomize=False)
        fuzzer.close()
        deadline = time.monotonic() + 15.0  # outlet streams nobody acknowledged close after 10 s
        while net.fds("edge") > fds_before and time.monotonic() < deadline:
            time.sleep(0.25)
        on_edge = [r["name"] for r in net.incoming_relays("edge")]
        return (f"{fuzzer.sent} frames ({fuzzer.reconnects} reconnects): {len(on_edge)} relays registered on "
                f"the edge; edge fds {fds_before} -> {net.fds('edge')} after 15 s", None)
    return attack


def unread_echoes(connections: int = 16, seconds: float = 60.0):
    """Issue 23: 256 KiB echo requests as fast as the relay reads them, no answer ever read."""
    def attack(net: Net):
        peers = [atk.unread(net.attacker(f"127.0.0.{2 + i}")) for i in range(connections)]
        request = atk.encode_frame((ECHO,), (atk.ATTACKER,), bytes(256 * 1024))
        flood = atk.Flood(peers, request, seconds)
        flood.run(lambda: 0)
        return (f"{connections} connections sent {sum(flood.sent) >> 20} MB in {seconds:g} s; relay "
                f"dropped_replies_unread {net.counter('relay', 'dropped_replies_unread')}, links_dead (no "
                f"progress for 60 s) {net.counter('relay', 'links_dead')}", lambda: atk.close_all(peers))
    return attack


def relay_name_flood(seconds: float = 60.0):
    """Issue 23: a flood through a relay name whose owner reads nothing; the flooder dials again
    whenever it is cut off."""
    def attack(net: Net):
        owner = atk.unread(net.attacker("127.0.0.3"))
        if not atk.register_without_reader(owner, "b"):
            return "the owner could not register b", owner.close
        message = atk.encode_frame((Address.local("forward_to_b"), Address.local("x")), (atk.ATTACKER,),
                                   bytes(256 * 1024))
        deadline, sent, floods = time.monotonic() + seconds, 0, 0
        while time.monotonic() < deadline:
            flooder = net.attacker("127.0.0.4")
            flood = atk.Flood([flooder], message, deadline - time.monotonic())
            flood.run(lambda: 0)
            sent, floods = sent + flood.sent[0], floods + 1
            flooder.close()
        return (f"{sent >> 20} MB sent by {floods} connections in {seconds:g} s; relay links_cut_off "
                f"{net.counter('relay', 'links_cut_off')}, dropped_over_share "
                f"{net.counter('relay', 'dropped_over_share')}", owner.close)
    return attack


def botnet(sources: int = 16, per_source: int = 256):
    """Issue 23: every slot of the relay's listener held by connections that routed one echo
    and then send only heartbeats, and a bot that takes every slot that frees; then a new
    client node, and (after the download) the edge killed and started again, are timed."""
    def attack(net: Net):
        bots = []
        for i in range(sources):
            bots += atk.connect_many(net.relay_port, per_source, f"127.0.0.{2 + i}")
        for bot in bots:
            bot.send_message((ECHO,))
        beats = atk.Heartbeats(bots, interval=5.0)
        refiller = atk.Refiller(net.relay_port, f"127.0.0.{2 + sources}")
        beats.__enter__()
        refiller.__enter__()
        net.ockam("node", "create", "late")
        route = f"/ip4/127.0.0.1/tcp/{net.relay_port}/service/forward_to_{RELAY_NAME}/service/echo"
        started = time.monotonic()
        reply = net.ockam.run("message", "send", "hello", "--from", "late", "--to", route, "--timeout", "10",
                              check=False)
        new_client = f"{time.monotonic() - started:.2f} s" if reply.returncode == 0 else f"FAILED ({reply.stderr.strip()})"
        open_bots = sum(not b.is_closed() for b in bots[:64])

        def edge_restart() -> str:
            net.kill9("edge")
            net.start("edge")
            restarted = time.monotonic()
            try:
                net.wait_registered(timeout=40)
                back = f"{time.monotonic() - restarted:.2f} s"
            except AssertionError:
                back = "not within 40 s"
            refiller.__exit__(None, None, None)
            beats.__exit__(None, None, None)
            atk.close_all(bots)
            return f"edge killed -9 and started again: registered after {back}"

        return (f"{len(bots)} bots ({sources} sources); a new client node answered after {new_client}; relay "
                f"connections_evicted {net.counter('relay', 'connections_evicted')}", edge_restart)
    return attack


ROWS = [
    ("1", "64-hop return route through forward_to_n3, every 0.2 s for 15 s", poison_64_hops, {}),
    ("2", "that, then a flood of registrations of n3", hijack, {}),
    ("3", "300 connections x 1 MiB - 1 partial frame", partial_frames, {}),
    ("4", "2000 connections that send nothing (or only heartbeats)", idle_connections, {}),
    ("5", "20 000 handshake Inits to /service/api in 5 s", handshake_inits, {}),
    ("6", "50 000 relay registrations from one connection", registrations, {}),
    ("7", "5000 fuzzed frames", fuzzed_frames, {}),
    ("8", "16 connections send 256 KiB echo requests for 60 s and read nothing", unread_echoes, {}),
    ("9", "a flood through a relay name whose owner reads nothing, 60 s", relay_name_flood, {}),
    ("10", "16 sources x 256 connections: one echo, then heartbeats", botnet, {}),
]
QUICK = {"1": {"seconds": 3.0}, "2": {}, "3": {"count": 50, "hold": 12.0}, "4": {"count": 200, "hold": 35.0},
         "5": {"count": 2000, "seconds": 2.0, "connections": 20}, "6": {"count": 2000}, "7": {"count": 500},
         "8": {"connections": 4, "seconds": 6.0}, "9": {"seconds": 6.0}, "10": {"sources": 4, "per_source": 32}}


def table(rows: list) -> str:
    def rtt(r: dict | None) -> str:
        if not r:
            return "-"
        values = "-" if r.get("median_ms") is None else f"{r['median_ms']} / {r['p99_ms']}"
        return values + (f" ({r['failures']} failed)" if r.get("failures") else "")

    lines = ["| attack | result | relay link lost (edge re-registrations) | forward_to_n3 owner | download sha256 "
             "| round trip ms median / p99: before -> during | relay RSS MB before / peak / +12 s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        rss = " / ".join(str(v) for v in r.get("rss_mb", [])) or "-"
        lines.append(f"| {r['attack']} | {r.get('result', '-')} | {r.get('relay_reconnects', '-')} "
                     f"| {r.get('n3_owner', '-')} | {r.get('download', '-')} "
                     f"| {rtt(r.get('rtt_before'))} -> {rtt(r.get('rtt_during'))} | {rss} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.hostile")
    parser.add_argument("--only", default="", help="comma-separated row numbers (default: all)")
    parser.add_argument("--quick", action="store_true", help="small attacks (a smoke run)")
    parser.add_argument("--out", default="bench/results/hostile.json")
    opts = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 16384), hard), hard))  # nodes inherit it
    wanted = {s for s in opts.only.split(",") if s}
    rows = []
    for number, name, make, options in ROWS:
        if wanted and number not in wanted:
            continue
        print(f"row {number}: {name} ...", file=sys.stderr, flush=True)
        row = measure(name, make(**(QUICK[number] if opts.quick else {})), options)
        print(f"  {json.dumps(row)}", file=sys.stderr, flush=True)
        rows.append(row)
    print(table(rows))
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"when": time.strftime("%Y-%m-%d %H:%M"), "quick": opts.quick, "rows": rows},
                              indent=2))
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
