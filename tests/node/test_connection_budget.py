"""Budgets on what strangers can make the TCP transport hold: partial frames (a deadline
per frame, a byte budget per node), accepted connections that never route a message, and
connections per listener and per source address. Each closes or refuses only the
connection that went over."""

import subprocess
import sys
from pathlib import Path

import pytest
from gevent import socket as gsocket

from appliance.limits.budgets import Limits
from appliance.node import tcp
from appliance.wire.framing import PROTOCOL_VERSION_BYTE, encode_frame_header
from tests.helpers import wait_until
from tests.node.conftest import RawPeer


def closed_by_node(peer: RawPeer) -> bool:
    """True once the node has closed (or reset) the peer's connection."""
    peer.sock.settimeout(0.05)
    try:
        while True:
            data = peer.sock.recv(65536)
            if not data:
                return True
    except gsocket.timeout:
        return False
    except OSError:
        return True


def test_a_frame_not_finished_in_time_closes_only_its_connection(make_node):
    node = make_node("relay", link_timeout=3, limits=Limits(frame_deadline=1))
    stalled, busy = RawPeer(make_node.listener("relay")), RawPeer(make_node.listener("relay"))
    stalled.sock.sendall(encode_frame_header(1000) + b"x" * 10)
    wait_until(lambda: closed_by_node(stalled) or not busy.echo(b"alive"), timeout=5,
               what="the stalled frame's connection to be closed")
    assert busy.echo(b"still here") == b"still here"
    assert node.node.counters["frames_timed_out"] == 1


def test_partial_frames_over_the_node_budget_close_the_oldest(make_node):
    node = make_node("relay", limits=Limits(incomplete_frame_bytes=100_000))
    first, second = RawPeer(make_node.listener("relay")), RawPeer(make_node.listener("relay"))
    first.sock.sendall(encode_frame_header(200_000) + b"x" * 60_000)
    wait_until(lambda: node.tcp.budget.incomplete >= 60_004, what="the first partial frame to arrive")
    second.sock.sendall(encode_frame_header(200_000) + b"y" * 60_000)
    wait_until(lambda: closed_by_node(first), what="the oldest partial frame's connection to be closed")
    assert not closed_by_node(second)
    assert node.node.counters["incomplete_frames_closed"] == 1 and node.tcp.budget.incomplete == 60_004


def test_an_accepted_connection_that_routes_nothing_is_closed_after_the_idle_timeout(make_node):
    node = make_node("relay", link_timeout=3, limits=Limits(idle_timeout=1))
    idle, working = RawPeer(make_node.listener("relay")), RawPeer(make_node.listener("relay"))
    assert working.echo(b"hello") == b"hello"
    idle.sock.sendall(encode_frame_header(0) * 3)  # heartbeats are not messages
    wait_until(lambda: closed_by_node(idle), timeout=5, what="the idle connection to be closed")
    assert working.echo(b"still here") == b"still here"
    assert node.node.counters["idle_connections_closed"] == 1


def connect_from(source: str, hostport: str):
    host, port = hostport.rsplit(":", 1)
    sock = gsocket.create_connection((host, int(port)), timeout=5, source_address=(source, 0))
    sock.sendall(PROTOCOL_VERSION_BYTE)
    return sock


@pytest.mark.parametrize("limits, refused_from", [
    (Limits(connections_per_source=3), "127.0.0.1"),
    (Limits(connections_per_listener=3), "127.0.0.2"),
])
def test_connections_over_a_budget_are_refused_at_once(make_node, limits, refused_from):
    node = make_node("relay", limits=limits)
    listener = make_node.listener("relay")
    kept = [connect_from("127.0.0.1", listener) for _ in range(3)]
    wait_until(lambda: len(node.tcp.connections) == 3, what="three connections to be accepted")
    extra = connect_from(refused_from, listener)
    extra.settimeout(5)
    try:
        refused = extra.recv(10) == b""
    except ConnectionResetError:
        refused = True
    assert refused and node.node.counters["connections_refused"] == 1
    if refused_from != "127.0.0.1":
        return
    assert RawPeer(listener, source="127.0.0.2").echo(b"in") == b"in"  # another source still gets in
    for sock in kept:
        sock.close()


def test_a_connection_closed_while_its_next_read_is_due_stops_counting(make_node):
    """The oldest partial frame's connection is closed by another connection's read; its own
    read of the same loop turn must not count its bytes again (they would never be forgotten:
    the node's count would stay over budget, and every new partial frame close nothing)."""
    node = make_node("relay", limits=Limits(incomplete_frame_bytes=100_000))
    later, oldest = RawPeer(make_node.listener("relay")), RawPeer(make_node.listener("relay"))
    oldest.sock.sendall(encode_frame_header(200_000) + b"x" * 60_000)
    wait_until(lambda: node.tcp.budget.incomplete >= 60_004, what="the oldest partial frame to arrive")
    oldest.sock.sendall(b"x" * 10_000)  # readable in the same turn as `later`, which goes first
    later.sock.sendall(encode_frame_header(200_000) + b"y" * 60_000)
    wait_until(lambda: closed_by_node(oldest), what="the oldest partial frame's connection to be closed")
    wait_until(lambda: node.tcp.budget.incomplete == 60_004, what="only the later partial frame to count")
    later.sock.close()
    wait_until(lambda: node.tcp.budget.incomplete == 0 and not node.tcp.connections, what="nothing to count")


def run_sender(script: str, *args: str) -> subprocess.Popen:
    """A peer in another process (blocking sockets would stall this test's hub)."""
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=str(Path(__file__).parents[2]),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_exit(proc: subprocess.Popen, timeout: float = 30) -> str:
    wait_until(lambda: proc.poll() is not None, timeout=timeout, what="the sending process to finish")
    return proc.stdout.read().decode()


STREAMER = r'''
import socket, sys, time
from appliance.wire.transport import encode_frame
from appliance.wire.address import Address
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)))
s.sendall(b"\x02")
frame = encode_frame((Address.local("nowhere"),), (Address.local("me"),), b"x" * 1500)
stream, pos, end = frame * 20000, 0, time.time() + float(sys.argv[2])
while time.time() < end:  # a byte stream arrives in segments, which end mid-frame
    s.sendall(stream[pos:pos + 10007])
    pos = (pos + 10007) % (len(frame) * 10000)
    time.sleep(0.001)
'''


def test_a_busy_link_whose_reads_end_mid_frame_is_not_taken_for_a_stalled_frame(make_node):
    node = make_node("relay", link_timeout=3, limits=Limits(frame_deadline=1))
    wait_exit(run_sender(STREAMER, make_node.listener("relay"), "4"))
    assert node.node.counters["frames_timed_out"] == 0 and node.node.counters["dropped_unknown_address"] > 1000


RESETTER = r'''
import socket, struct, sys
host, port = sys.argv[1].rsplit(":", 1)
for _ in range(int(sys.argv[2])):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.connect((host, int(port)))
    s.close()  # RST at once
'''


def test_connections_reset_before_their_greeting_leave_no_count_behind(make_node):
    node = make_node("relay", limits=Limits(connections_per_source=50))
    wait_exit(run_sender(RESETTER, make_node.listener("relay"), "200"))
    wait_until(lambda: not node.tcp.connections, what="the reset connections to go")
    assert (dict(node.tcp.budget.per_source), dict(node.tcp.budget.per_listener)) == ({}, {})
    assert RawPeer(make_node.listener("relay")).echo(b"in") == b"in"


def test_sources_are_ipv4_addresses_and_ipv6_64s_also_on_dual_stack_listeners():
    from appliance.node.budget import source_address
    assert [source_address(a) for a in ("10.0.0.7", "::ffff:10.0.0.7", "2001:db8:1:2::5", "2001:db8:1:2:ffff::9",
                                         "fe80::1%eth0")] == \
        ["10.0.0.7", "10.0.0.7", "2001:db8:1:2::/64", "2001:db8:1:2::/64", "fe80::/64"]


FLOODER = r"""
import socket, sys, time
from appliance.wire.transport import encode_frame
from appliance.wire.address import Address
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)))
s.sendall(b"\x02")
frame = encode_frame((Address.local("forward_to_b"), Address.local("x")), (Address.local("me"),), b"x" * 900_000)
s.settimeout(0.5)
end = time.time() + 3
while time.time() < end:
    try:
        s.sendall(frame)
    except socket.timeout:
        pass
    except OSError:
        print("cut off")
        break
"""


def test_a_flood_through_a_relay_name_cuts_off_the_flooder_not_the_name(make_node, monkeypatch):
    monkeypatch.setattr(tcp, "FILLED_BY_OTHERS", 8 << 20)
    node = make_node("relay")
    owner = RawPeer(make_node.listener("relay"))
    owner.sock.setsockopt(gsocket.SOL_SOCKET, gsocket.SO_RCVBUF, 4096)
    assert owner.register("b").ok  # and reads nothing from now on, like an edge on a slow link
    link = node.node.workers[node.forwarding.relays["forward_to_b"].link]
    assert wait_exit(run_sender(FLOODER, make_node.listener("relay"))).strip() == "cut off"
    assert node.node.counters["links_cut_off"] >= 1 and link.connected  # the name's link stays
    assert link.writer.backlog < 24 << 20
