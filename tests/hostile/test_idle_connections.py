"""Issue 11, row 4: 2000 connections that send nothing were all held open (no idle timeout).

Spec 3: `idle_timeout` (an incoming connection that has routed no message since it opened is
closed, heartbeats do not count: `idle_connections_closed`), `connections_per_source` (over
it, a connection is accepted and closed at once: `connections_refused`).
"""

from __future__ import annotations

import time

import pytest

from tests.helpers import wait_until
from tests.hostile.attacker import Heartbeats, Peer, close_all, connect_many, wait_closed
from tests.hostile.conftest import Transfer, transfer_ok

pytestmark = pytest.mark.timeout(60)

IDLE = 2.0
SLACK = 3.0
EARLY = 0.25


def test_idle_connections_are_closed(hostile, attackers):
    """idle_timeout = 2: from 127.0.0.2, 100 connections that send nothing at all and 100 that
    send the version byte and a heartbeat every 0.5 s. All 200 are closed 2 to 5 s after they
    opened; a connection that routed one message stays, as do the relay's links to the edge
    and the client, and the download."""
    net = hostile(relay_limits={"idle_timeout": IDLE})
    control = attackers(net.attacker("127.0.0.2").start_reader())
    assert control.echo()
    with Transfer(net.inlet) as transfer:
        opened = time.monotonic()
        silent = connect_many(net.relay_port, 100, "127.0.0.2", version=False)
        beating = connect_many(net.relay_port, 100, "127.0.0.2", version=True)
        all_open = time.monotonic()
        try:
            with Heartbeats(beating + [control], interval=0.5):
                closed = wait_closed(silent + beating, timeout=(all_open - opened) + IDLE + SLACK + 1.0)
            lifetimes = sorted(round(p.eof_at - opened, 2) for p in closed)
            facts = {
                "silent closed": sum(p.eof.is_set() for p in silent),
                "heartbeating closed": sum(p.eof.is_set() for p in beating),
                "closed too early": [t for t in lifetimes if t < IDLE - EARLY],
                "closed too late": [round(p.eof_at - all_open, 2) for p in closed
                                    if p.eof_at - all_open > IDLE + SLACK],
                "relay idle_connections_closed": net.counter("relay", "idle_connections_closed"),
                "connection that routed a message still open": not control.eof.is_set() and control.echo(),
            }
        finally:
            close_all(silent + beating)
    facts.update({"download": transfer_ok(transfer), "edge registrations": net.registrations(),
                  "new download": net.fetch_ok(seed="after-idle")})
    assert facts == {"silent closed": 100, "heartbeating closed": 100, "closed too early": [], "closed too late": [],
                     "relay idle_connections_closed": 200, "connection that routed a message still open": True,
                     "download": True, "edge registrations": 1, "new download": True}, \
        f"download: {transfer.error or 'ok'}"


def test_connections_per_source(hostile):
    """connections_per_source = 50: of 80 connections from 127.0.0.3 that route nothing, the
    30 oldest give way to the newer ones (issue 23: the connection worth least goes, not the
    newcomer); the edge (127.0.0.1) still serves the portal; once the 50 are gone
    127.0.0.3 may connect again."""
    net = hostile(relay_limits={"connections_per_source": 50})
    peers = connect_many(net.relay_port, 80, "127.0.0.3")
    try:
        wait_closed(peers, timeout=1.5)
        closed = [i for i, p in enumerate(peers) if p.eof.is_set()]
        facts = {"closed": closed, "relay connections_evicted": net.counter("relay", "connections_evicted"),
                 "portal": net.fetch_ok(seed="per-source"), "edge registrations": net.registrations()}
        assert facts == {"closed": list(range(30)), "relay connections_evicted": 30, "portal": True,
                         "edge registrations": 1}
    finally:
        close_all(peers)

    def welcome_again() -> bool:
        peer = Peer(net.relay_port, "127.0.0.3")
        try:
            return peer.echo(timeout=1.0)
        finally:
            peer.close()

    wait_until(welcome_again, timeout=5.0, what="127.0.0.3 to be let in again once its connections closed")
