"""Issue 23, row 3: 16 addresses × 256 connections that each routed one echo message and then
sent only heartbeats held every slot of the relay's listener: a new client node got no reply
within 10 s, and an edge killed and started again was not back within 40 s.

Spec: when a listener or a source is full, the connection worth least gives way to the new
one (`connections_evicted`): first one that carries nothing (no relay registration, no secure
channel, no portal stream) and routed least recently, never one that carries something. An
incoming link that carries nothing and routed nothing for `link_idle_timeout` is closed.
Test size: a listener of 40 slots, 4 addresses × 10 connections, and a fifth address that
takes every slot that frees.
"""

from __future__ import annotations

import time

import pytest

from tests.helpers import wait_until
from tests.hostile.attacker import Heartbeats, Refiller, connect_many
from tests.hostile.conftest import RELAY_NAME, Transfer, check_transfer

pytestmark = pytest.mark.timeout(120)

SLOTS = 40
PER_SOURCE = 10
SOURCES = [f"127.0.0.{2 + i}" for i in range(4)]


def test_a_botnet_that_holds_every_slot_gives_way_to_new_clients_and_the_edge(hostile, attackers):
    net = hostile(relay_limits={"connections_per_listener": SLOTS, "connections_per_source": PER_SOURCE})
    bots = attackers([p.start_reader() for source in SOURCES for p in connect_many(net.relay_port, PER_SOURCE, source)])
    route = f"/ip4/127.0.0.1/tcp/{net.relay_port}/service/forward_to_{RELAY_NAME}/service/echo"
    with Transfer(net.inlet) as transfer:  # a client connected before: it must not notice
        for bot in bots:
            bot.echo(timeout=2)  # one message each, then heartbeats only
        with Heartbeats(bots, interval=0.5), Refiller(net.relay_port, "127.0.0.6"):
            net.ockam("node", "create", "late")
            started = time.monotonic()
            reply = net.ockam.run("message", "send", "hello", "--from", "late", "--to", route, "--timeout", "5",
                                  check=False)
            new_client = time.monotonic() - started
            transfer.attack_over.set()
            check_transfer(transfer)

            net.kill9("edge")
            net.start("edge")
            restarted = time.monotonic()
            net.wait_registered(timeout=10)
            edge_back = time.monotonic() - restarted
            served = net.fetch_ok(seed="after-botnet")
    facts = {"new client answered": reply.returncode == 0 and reply.stdout.strip() == "hello",
             "new client within 5 s": new_client < 5, "edge back within 5 s": edge_back < 5,
             "portal after the edge restarted": served,
             "evicted": net.counter("relay", "connections_evicted") >= 2}
    assert facts == {"new client answered": True, "new client within 5 s": True, "edge back within 5 s": True,
                     "portal after the edge restarted": True, "evicted": True}, \
        f"new client {new_client:.1f} s ({reply.stderr.strip()}), edge {edge_back:.1f} s"
