"""Budgets on what strangers can make the TCP transport hold: partial frames (a deadline
per frame, a byte budget per node), accepted connections that never route a message, and
connections per listener and per source address. Each closes or refuses only the
connection that went over."""

import subprocess
import sys
from pathlib import Path

import gevent
import pytest
from gevent import socket as gsocket

from appliance.limits.budgets import Limits
from appliance.node.transport.queues import ACCOUNT_FROM
from appliance.wire.address import Address
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


@pytest.mark.parametrize("limits, newcomer_from", [
    (Limits(connections_per_source=4), "127.0.0.1"),
    (Limits(connections_per_listener=4), "127.0.0.2"),
])
def test_over_a_budget_the_connection_worth_least_gives_way(make_node, limits, newcomer_from):
    """First one that never routed, then one that only talked to the node's own services
    (even if it did so last), then the one that routed least recently; never one that
    carries a relay registration."""
    node = make_node("relay", limits=limits)
    listener = make_node.listener("relay")
    silent = RawPeer(listener, source="127.0.0.1")
    owner = RawPeer(listener, source="127.0.0.1")
    assert owner.register("a").ok
    user = RawPeer(listener, source="127.0.0.1")
    user.send((Address.local("forward_to_a"), Address.local("x")), (Address.local("me"),), b"through the relay")
    assert owner.receive().payload == b"through the relay"
    quiet = RawPeer(listener, source="127.0.0.1")
    assert quiet.echo(b"last") == b"last"
    wait_until(lambda: len(node.tcp.connections) == 4, what="four connections to be accepted")

    newcomers = []
    for gives_way in (silent, quiet, "the first newcomer"):
        newcomers.append(RawPeer(listener, source=newcomer_from))
        assert newcomers[-1].echo(b"in") == b"in"
        gives_way = newcomers[0] if gives_way == "the first newcomer" else gives_way  # it only echoed
        wait_until(lambda: closed_by_node(gives_way), what="the connection worth least to give way")
    assert node.node.counters["connections_evicted"] == 3 and node.node.counters["connections_refused"] == 0
    assert owner.echo(b"kept") == b"kept" and "forward_to_a" in node.forwarding.relays
    assert user.echo(b"kept") == b"kept"  # it used the relay: worth more than those that only echo


def test_when_every_connection_carries_something_the_new_one_is_refused(make_node):
    node = make_node("relay", limits=Limits(connections_per_listener=2))
    listener = make_node.listener("relay")
    owners = [RawPeer(listener) for _ in range(2)]
    assert all(owner.register(name).ok for owner, name in zip(owners, "ab"))
    try:
        newcomer = RawPeer(listener, source="127.0.0.2")
        wait_until(lambda: closed_by_node(newcomer), what="the new connection to be refused")
    except ConnectionResetError:
        pass  # refused before its greeting was sent
    assert node.node.counters["connections_refused"] == 1 and node.node.counters["connections_evicted"] == 0
    assert [owner.echo(b"kept") for owner in owners] == [b"kept", b"kept"]


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
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=str(Path(__file__).parents[3]),
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
    from appliance.node.transport.budget import source_address
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


def test_a_flood_through_a_relay_name_cuts_off_the_flooder_not_the_name(make_node):
    node = make_node("relay", link_timeout=3, limits=Limits(link_share=8 << 20))
    owner = RawPeer(make_node.listener("relay"))
    owner.sock.setsockopt(gsocket.SOL_SOCKET, gsocket.SO_RCVBUF, 4096)
    assert owner.register("b").ok  # and reads nothing from now on, like an edge on a slow link
    link = node.node.workers[node.forwarding.relays["forward_to_b"].link]
    assert wait_exit(run_sender(FLOODER, make_node.listener("relay"))).strip() == "cut off"
    assert node.node.counters["links_cut_off"] >= 1 and link.connected  # the name's link stays
    assert link.writer.backlog < 24 << 20
    assert node.tcp.queues.total > 0
    reader = gevent.spawn(lambda: [owner.sock.recv(1 << 20) for _ in iter(int, 1)])  # the owner catches up
    try:  # and what the flooder held is forgotten at the next liveness tick, queue or not
        wait_until(lambda: link.writer.backlog == 0 and node.tcp.queues.total == 0, what="the held bytes released")
    finally:
        reader.kill()


def test_a_flood_out_of_a_secure_channel_is_held_to_its_identitys_share(make_node):
    """A member floods a relay name through a secure channel that ends at the relay: the
    messages out of the channel count against the member's identity. Its link carries its
    channel, and the name's link its registration: neither is closed, the rest is dropped."""
    node = make_node("relay", limits=Limits(link_share=2 << 20))
    owner = RawPeer(make_node.listener("relay"))
    owner.sock.setsockopt(gsocket.SOL_SOCKET, gsocket.SO_RCVBUF, 4096)
    assert owner.register("b").ok  # and reads nothing from now on
    name_link = node.node.workers[node.forwarding.relays["forward_to_b"].link]
    member = make_node("member", listen=False)
    end = member.channels.create(member.resolver.resolve("/node/relay").route + (Address.local("api"),), "flood")
    onward = (end.encryptor.address, Address.local("forward_to_b"), Address.local("x"))
    for _ in range(64):
        member.node.send(onward, bytes(256 * 1024))
        gevent.sleep(0)
    wait_until(lambda: node.node.counters["dropped_over_share"] >= 1, what="the member's share to be full")
    held = name_link.queue.held
    assert name_link.connected and node.node.counters["links_cut_off"] == 0
    identifier = member.channels.identity.identifier
    assert list(held) == [identifier] and held[identifier] <= 2 << 20
    assert name_link.writer.backlog < (2 << 20) + ACCOUNT_FROM + (1 << 20)


def test_a_relay_answering_a_client_that_never_reads_closes_the_client_not_the_edge(make_node):
    """Answers of the edge behind a relay name pile up for a client that reads nothing: the
    client's link, which carries nothing, is closed; the edge's, which carries the name, stays."""
    node = make_node("relay", limits=Limits(link_share=2 << 20))
    edge = RawPeer(make_node.listener("relay"))
    assert edge.register("e").ok
    client = RawPeer(make_node.listener("relay"), source="127.0.0.2")
    client.sock.setsockopt(gsocket.SOL_SOCKET, gsocket.SO_RCVBUF, 4096)
    client.send((Address.local("forward_to_e"), Address.local("echo")), (Address.local("c"),), b"ask")
    request = edge.receive()
    for _ in range(64):  # the edge answers along the request's return route, as its echo would
        edge.send(request.return_route, (Address.local("echo"),), bytes(256 * 1024))
    wait_until(lambda: node.node.counters["links_cut_off"] == 1, what="the client's link to be closed")
    assert [c.peer.split(":")[0] for c in node.tcp.connections.values()] == ["127.0.0.1"]  # the edge's
    assert "forward_to_e" in node.forwarding.relays and edge.echo(b"still here") == b"still here"
