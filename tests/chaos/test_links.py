"""Bad links between the edge and the relay, and a stalled client next to active ones, with the
real CLI (the topology of test_recovery.py):

    c: inlet(s) --> r (listener) <-- [ChaosProxy] <-- e (relay `e`, outlet(s))
                                                        |-- /service/outlet      -> sha256-or-echo server
                                                        `-- /service/echo_outlet -> echo server

- half-open link: the proxy blackholes e's relay link (no FIN, no RST); e finds it dead within
  its link timeout and registers again over a new connection; the portal echoes again.
- throttled link (8000 B/s each way): a download arrives whole while echo round trips go on.
- delayed link (50 ms each way): a 4 MiB download and 20 round trips.
- a client that stops reading a 64 MiB download for 5 s does not hold up its neighbours on the
  same inlet, on another inlet, or through another outlet of the same relay path.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import statistics
import threading
import time
from pathlib import Path

import pytest

from tests.chaos.conftest import CHUNK, create_node, expected_sha256, fetch_sha256, read_sha256, recovery_time
from tests.chaos.test_recovery import PLAIN, ROUTES, Topology
from tests.helpers import echo_until_eof, free_port, recv_exactly, wait_until

pytestmark = pytest.mark.timeout(60)

RECOVERY_WITHIN = 5.0
DEFAULT_LINK_TIMEOUT = 15.0  # a node's link_timeout unless its TOML file says otherwise
POLL_SLACK = 1.0  # what one `ockam node show` poll may add to a measured detection time


def echo_route(route: str) -> str:
    """The same relay path, to the edge's second outlet."""
    assert route.endswith("/service/outlet"), route
    return route[: -len("/service/outlet")] + "/service/echo_outlet"


class Links(Topology):
    """Topology, plus: e may start from a TOML file (`edge_config`, e.g. for its link_timeout),
    and with `echo_port` e has a second outlet /service/echo_outlet to it and c a second inlet
    (`echo_inlet`) to that outlet over the same relay path."""

    def __init__(self, ockam, target_port: int, route: str, echo_port: int = 0, edge_config: str = "",
                 **options):
        self.echo_outlet_port, self.edge_config = echo_port, edge_config
        super().__init__(ockam, target_port, route, **options)
        self.echo_inlet = None
        if echo_port:
            self.echo_inlet = ("127.0.0.1", free_port())
            ockam("tcp-inlet", "create", "--at", "/node/c", "--from", f"127.0.0.1:{self.echo_inlet[1]}",
                  "--to", echo_route(route))
            recovery_time(self.echo_inlet, within=10.0, what="the second portal to work before any chaos")
            self.wait_streams_closed()

    def start_edge(self) -> None:
        create_node(self.ockam, "e", None, *(["--config", self.edge_config] if self.edge_config else []))
        self.ockam("relay", "create", "e", "--at", self.relay_at, "--to", "/node/e")
        self.registered_at = time.monotonic()
        self.ockam("tcp-outlet", "create", "--at", "/node/e", "--from", "/service/outlet",
                   "--to", f"127.0.0.1:{self.echo_port}")
        if self.echo_outlet_port:
            self.ockam("tcp-outlet", "create", "--at", "/node/e", "--from", "/service/echo_outlet",
                       "--to", f"127.0.0.1:{self.echo_outlet_port}")

    def counters(self, node: str) -> dict:
        return json.loads(self.ockam("node", "show", node, "--output", "json"))["counters"]

    def edge_relay(self) -> dict:
        relays = json.loads(self.ockam("relay", "list", "--to", "e", "--output", "json"))
        assert [r["name"] for r in relays] == ["forward_to_e"], relays
        return relays[0]


@pytest.fixture
def links(ockam):
    """links(route, target_port, **Links options) -> a running Links, SIGKILLed at teardown."""
    made = []

    def make(route: str, target_port: int, **options) -> Links:
        made.append(Links(ockam, target_port, route, **options))
        return made[-1]

    yield make
    for item in made:
        item.kill_all()


class MixedTarget:
    """A server that answers `GET <n> <seed>\\n` as the sha256_server does and echoes anything
    else, so that one outlet serves a download and echo round trips. `finished` holds when
    each download was written out in full (monotonic)."""

    def __init__(self, threaded_server, sha256_server):
        self.sha256_server = sha256_server
        self.finished: list[float] = []
        self.port = threaded_server(self.handle).port

    def handle(self, conn) -> None:
        conn.settimeout(30)
        head = conn.recv(4, socket.MSG_PEEK | socket.MSG_WAITALL)
        if head == b"GET ":
            self.sha256_server.handle(conn)
            self.finished.append(time.monotonic())
        else:
            echo_until_eof(conn)


@pytest.fixture
def mixed_target(threaded_server, sha256_server) -> MixedTarget:
    return MixedTarget(threaded_server, sha256_server)


# --- helpers -----------------------------------------------------------------------------------




def round_trip(sock, size: int, timeout: float) -> float:
    """Send `size` random bytes, read them back: seconds taken; fails unless exact in time."""
    payload = os.urandom(size)
    start = time.monotonic()
    sock.sendall(payload)
    got = recv_exactly(sock, len(payload), timeout)
    took = time.monotonic() - start
    assert got == payload, (f"round trip: {len(got)} of {size} bytes back after {took:.2f} s "
                            f"({'a prefix' if got == payload[:len(got)] else 'not the bytes sent'})")
    assert took < timeout, took
    return took


class Download(threading.Thread):
    """fetch_sha256 in a thread: `result` is (bytes received, sha256), `took` its seconds."""

    def __init__(self, address, n: int, seed: str, timeout: float):
        super().__init__(daemon=True)
        self.args_ = (address, n, seed, timeout)
        self.result, self.took, self.error = None, None, None

    def run(self) -> None:
        start = time.monotonic()
        try:
            self.result = fetch_sha256(*self.args_)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        self.took = time.monotonic() - start

    def check(self, n: int, seed: str) -> None:
        self.join(self.args_[3] + 5)
        assert not self.is_alive(), "the download thread did not end"
        assert self.error is None, self.error
        assert self.result == (n, expected_sha256(n, seed)), (self.result[0], n)


# --- 1. half-open relay link ----------------------------------------------------------------------


RELAY_PING_INTERVAL = 10.0  # PROTOCOL.md section 6: the relay client pings the relay node this often

@pytest.mark.parametrize("link_timeout", [
    pytest.param(6.0, id="toml-6s"),
    pytest.param(None, id="default-15s"),
])
def test_half_open_relay_link(links, chaos_proxy, mixed_target, record_recovery, tmp_path, link_timeout):
    """e's relay link is blackholed (a middlebox that drops it silently): e declares the link
    dead within its link_timeout (6 s from a TOML file, or the default 15 s), and once the
    middlebox forwards again e registers over a NEW connection and a new client connection
    through the inlet echoes within 5 s."""
    config = ""
    if link_timeout is not None:
        config = str(tmp_path / "e.toml")
        Path(config).write_text(f'[node]\nname = "e"\nlink_timeout = {link_timeout:g}\n')
    timeout = link_timeout or DEFAULT_LINK_TIMEOUT
    relay_port = free_port()
    proxy = chaos_proxy(relay_port)
    net = links(PLAIN, mixed_target.port, relay_port=relay_port, relay_at=proxy.multiaddr, edge_config=config)
    assert proxy.stats()["accepted"] == 1
    assert net.counters("e").get("links_dead", 0) == 0
    before = net.edge_relay()
    assert before["registrations"] == 1, before

    proxy.blackhole()
    start = time.monotonic()
    wait_until(lambda: net.counters("e").get("links_dead", 0) >= 1, timeout=timeout + 5,
               interval=0.1, what="e to find its blackholed relay link dead")
    detected = time.monotonic() - start
    record_recovery(detected, "detection: blackhole -> links_dead on e")
    # two silent liveness ticks (link_timeout / 3 each) after the last frame heard
    assert timeout / 3 - 0.5 <= detected <= timeout + POLL_SLACK, detected
    # the relay rides on that link: it must let it go at once and register again (section 6)
    registered_for = time.monotonic() - net.registered_at
    try:
        wait_until(lambda: net.edge_relay()["remote_route"] == "(reconnecting)", timeout=2,
                   what="e's relay to let go of its dead link")
    except AssertionError as exc:
        raise AssertionError(f"{exc} ({detected:.1f} s after the blackhole, {registered_for:.1f} s after the "
                             f"registration: {int(registered_for // RELAY_PING_INTERVAL)} relay ping(s) "
                             f"sent by then)") from None
    assert net.edge_relay()["registrations"] == 1

    proxy.passthrough()
    resumed = time.monotonic()
    wait_until(lambda: net.edge_relay()["registrations"] == 2, timeout=RECOVERY_WITHIN,
               what="e to register its relay again")
    stats, after = proxy.stats(), net.edge_relay()
    assert stats["accepted"] >= 2, stats  # a new connection through the proxy
    assert after["remote_route"] not in (before["remote_route"], "(reconnecting)"), (before, after)
    recovery_time(net.inlet, within=RECOVERY_WITHIN - (time.monotonic() - resumed),
                  what="a new connection through the inlet after the link was rebuilt")
    record_recovery(time.monotonic() - resumed, "recovery: passthrough -> new connection echoes")
    assert net.counters("e").get("links_dead", 0) == 1
    net.assert_exact_echo()


# --- 2. throttled link ------------------------------------------------------------------------------

THROTTLE = 8000  # bytes/s each way: 64 kbit/s


@pytest.mark.parametrize("route", ROUTES)
def test_throttled_relay_link(links, chaos_proxy, mixed_target, route):
    """64 kbit/s each way between e and r: a 48 KiB download arrives whole, and echo round trips
    on another connection all succeed meanwhile (each within 15 s: they queue behind the
    download on the shared link), and are quick again once it is over."""
    relay_port = free_port()
    proxy = chaos_proxy(relay_port)
    net = links(route, mixed_target.port, relay_port=relay_port, relay_at=proxy.multiaddr)
    with socket.create_connection(net.inlet, timeout=10) as b:
        round_trip(b, 64, timeout=10)  # B's stream is open before the throttle
        proxy.throttle(THROTTLE)
        up_before = proxy.stats()["bytes_up"]
        n, seed = 48 * 1024, "throttled"
        download = Download(net.inlet, n, seed, timeout=40)
        download.start()
        during = []
        for _ in range(200):  # bounded; ends with the download
            if not download.is_alive():
                break
            during.append(round_trip(b, 256, timeout=15))
        download.check(n, seed)
        after = [round_trip(b, 256, timeout=2) for _ in range(3)]
    print(f"throttled: 48 KiB in {download.took:.1f} s; {len(during)} round trips meanwhile "
          f"({', '.join(f'{t:.2f}' for t in during)} s), then {max(after):.2f} s at most")
    assert download.took >= n / THROTTLE * 0.9, download.took  # the throttle was on the path
    assert proxy.stats()["bytes_up"] - up_before >= n  # e -> r: the download crossed the proxy
    assert during, "no round trip while the download ran"


# --- 3. delayed link --------------------------------------------------------------------------------

DELAY = 0.05  # seconds each way


@pytest.mark.parametrize("route", ROUTES)
def test_delayed_relay_link(links, chaos_proxy, mixed_target, route):
    relay_port = free_port()
    proxy = chaos_proxy(relay_port)
    net = links(route, mixed_target.port, relay_port=relay_port, relay_at=proxy.multiaddr)
    proxy.delay(DELAY)
    n, seed = 4 * 1024 * 1024, "delayed"
    start = time.monotonic()
    assert fetch_sha256(net.inlet, n, seed, timeout=30) == (n, expected_sha256(n, seed))
    took = time.monotonic() - start
    with socket.create_connection(net.inlet, timeout=10) as b:
        rtts = [round_trip(b, 1024, timeout=5) for _ in range(20)]
    print(f"delayed {DELAY * 1000:.0f} ms each way: 4 MiB in {took:.2f} s; 20 round trips: "
          f"median {statistics.median(rtts) * 1000:.0f} ms, max {max(rtts) * 1000:.0f} ms")
    assert min(rtts) >= 2 * DELAY, rtts  # each crossed the delayed link both ways
    assert max(rtts) < 1.0, rtts


# --- 4. a stalled client next to active ones ----------------------------------------------------------

STALL = 5.0
BIG = 64 * 1024 * 1024


@pytest.mark.parametrize("route", ROUTES)
def test_stalled_client_next_to_active_ones(links, mixed_target, echo_target, route):
    """A asks for 64 MiB, reads 1 byte and stops reading for 5 s; meanwhile B1 (same inlet and
    outlet as A) and B2 (a second inlet on c, to e's second outlet over the same relay path) each
    do 50 echo round trips, each within 1 s; then A reads the rest and its sha256 is right."""
    net = links(route, mixed_target.port, echo_port=echo_target)
    seed = "stalled"
    with socket.create_connection(net.inlet, timeout=10) as a, \
            socket.create_connection(net.inlet, timeout=10) as b1, \
            socket.create_connection(net.echo_inlet, timeout=10) as b2:
        a.sendall(f"GET {BIG} {seed}\n".encode())
        first = recv_exactly(a, 1, timeout=10)
        assert len(first) == 1
        stalled = time.monotonic()
        rtts = []
        for i in range(50):  # spread over the stall
            pause = stalled + i * (STALL - 1.0) / 50 - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # pacing, not waiting for a condition
            rtts.append(round_trip(b1, 1024, timeout=1.0))
            rtts.append(round_trip(b2, 1024, timeout=1.0))
        assert time.monotonic() - stalled < STALL, "the round trips did not fit in the stall"
        time.sleep(max(0.0, stalled + STALL - time.monotonic()))  # the deliberate stall
        print(f"stalled A: 100 round trips meanwhile, median {statistics.median(rtts) * 1000:.1f} ms, "
              f"max {max(rtts) * 1000:.1f} ms")
        resumed = time.monotonic()
        assert not mixed_target.finished, "the target could write all 64 MiB while A did not read"
        received, digest = read_sha256(a, BIG, 40, hashlib.sha256(first), 1)
        took = time.monotonic() - resumed
    print(f"A resumed: {received} bytes in all, the rest in {took:.1f} s")
    assert (received, digest) == (BIG, expected_sha256(BIG, seed))
    wait_until(lambda: mixed_target.finished, timeout=5, what="the target to be done writing")
    assert mixed_target.finished[0] > resumed, "the target was not held back while A stalled"

