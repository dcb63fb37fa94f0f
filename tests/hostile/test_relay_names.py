"""Issue 11, row 2: the 64-hop message of row 1 broke the relay link, then a flood of
registrations of the name `n3` took `forward_to_n3` within 0.1-3 s, and a plain inlet then
delivered its data to the attacker.

Spec 2 (relay names): a plain name is refused to anyone without its secret while it is live
and for `relay_grace` seconds after its link drops ("is taken"); the secret (16 bytes, in the
ok reply) takes it over at once. A name registered over a secure channel belongs to that
identity ("belongs to"). A node that is not a relay (an edge: no explicit listener address, or
`[node] relay = false`) refuses registrations ("not a relay").
"""

from __future__ import annotations

import os
import time

import pytest

from appliance.wire import portal as portal_wire
from appliance.wire.address import Address
from tests.helpers import wait_until
from tests.hostile.attacker import hops, registration_request
from tests.hostile.conftest import RELAY_NAME, Transfer, transfer_ok

pytestmark = pytest.mark.timeout(60)

FORWARD = Address.local("forward_to_n3")
ECHO = Address.local("echo")
GRACE = 3.0


def refused(reply, reason: str) -> bool:
    return reply is not None and not reply.ok and reason in reply.text


def describe(replies) -> list:
    return sorted({"no reply" if r is None else f"{'ok' if r.ok else 'refused'}: {r.text}" for r in replies})


def n3_at_relay(net) -> str | None:
    return {r["name"]: r["remote_route"] for r in net.incoming_relays("relay")}.get("forward_to_n3")


def test_live_name_is_refused_without_its_secret(hostile, attackers):
    net = hostile()
    before = n3_at_relay(net)
    attacker = attackers(net.attacker())
    replies = [attacker.register(RELAY_NAME), attacker.register(RELAY_NAME, secret=os.urandom(16))]
    assert all(refused(r, "is taken") for r in replies), describe(replies)
    assert (net.registrations(), n3_at_relay(net)) == (1, before)


def test_poison_and_registration_flood_cannot_take_the_name(hostile, attackers):
    """The issue's hijack: a 64-hop message through forward_to_n3, then a registration of n3,
    again and again (at most 100 rounds or 3 s). Every registration is refused (or, past 50
    a second, dropped unanswered), the relay link stays, and the plain inlet's data goes to
    the edge, never to the attacker."""
    net = hostile()
    before = n3_at_relay(net)
    attacker = attackers(net.attacker().start_reader())
    replies = []
    with Transfer(net.inlet) as transfer:
        deadline = time.monotonic() + 3.0
        while len(replies) < 100 and time.monotonic() < deadline:
            attacker.send_message((FORWARD, ECHO), hops(64), b"poison")
            replies.append(attacker.register(RELAY_NAME, timeout=1.0))
    fresh = net.fetch_ok(n=256 * 1024, seed="after-the-flood")
    pings = [m for m in attacker.received if m.payload == portal_wire.PING]  # inlet traffic hijacked
    facts = {"registrations granted": sum(1 for r in replies if r is not None and r.ok),
             "refusals not 'is taken'": [d for d in describe(replies) if "is taken" not in d and d != "no reply"],
             "portal Pings delivered to the attacker": len(pings),
             "download across the flood": transfer_ok(transfer), "new download": fresh,
             "edge registrations": net.registrations(), "n3 at the relay": n3_at_relay(net)}
    assert facts == {"registrations granted": 0, "refusals not 'is taken'": [],
                     "portal Pings delivered to the attacker": 0, "download across the flood": True,
                     "new download": True, "edge registrations": 1, "n3 at the relay": before}


def test_name_is_held_for_the_grace_after_its_link_drops(hostile, attackers):
    """relay_grace = 3: kill -9 the edge; once the relay has seen its link go, an attacker
    trying n3 until 1 s before the grace ends is refused every time ("is taken"). The edge,
    started again, holds n3 again (at once with its secret, else once the grace is over) and
    the portal works; the attacker is still refused."""
    net = hostile(relay_node={"relay_grace": GRACE})
    edge_link = n3_at_relay(net).split(" => ")[0]
    attacker = attackers(net.attacker())
    net.kill9("edge")
    relay_links = lambda: [t.get("worker_address") for t in net.show("relay")["transports"]]  # noqa: E731
    wait_until(lambda: edge_link not in relay_links(), timeout=5.0, what="the relay to see the edge's link go")
    link_lost = time.monotonic()
    replies = []
    while time.monotonic() < link_lost + GRACE - 1.0 and len(replies) < 50:
        replies.append(attacker.register(RELAY_NAME, timeout=1.0))
    assert replies and all(refused(r, "is taken") for r in replies), describe(replies)
    net.start("edge")
    wait_until(net.registered, timeout=GRACE + 10.0, interval=0.1, what="the restarted edge to hold n3 again")
    assert net.fetch_ok(seed="after-restart")
    late = attacker.register(RELAY_NAME)
    assert refused(late, "is taken"), describe([late])


def test_secret_takes_a_plain_name_over_at_once(hostile, attackers):
    """The ok reply carries a 16-byte secret; without it (or with a wrong one) the name is
    refused while live; with it, a new connection takes the name over at once and the
    relay's traffic for it goes there."""
    net = hostile(edge=False, client=False)
    first, second, sender = attackers(net.attacker("127.0.0.2"), net.attacker("127.0.0.3"),
                                      net.attacker("127.0.0.5"))
    granted = first.register("hostile-1")
    assert granted is not None and granted.ok, describe([granted])
    assert granted.text == "forward_to_hostile-1"
    assert isinstance(granted.secret, bytes) and len(granted.secret) == 16, granted
    assert refused(second.register("hostile-1"), "is taken")
    assert refused(second.register("hostile-1", secret=bytes(b ^ 0xFF for b in granted.secret)), "is taken")
    takeover = second.register("hostile-1", secret=granted.secret)
    assert takeover is not None and takeover.ok, describe([takeover])
    sender.send_message((Address.local("forward_to_hostile-1"), Address.local("x")), payload=b"for-the-owner")
    arrived = second.wait_for(lambda m: m.payload == b"for-the-owner", timeout=3.0)
    assert [m.onward[-1] for m in arrived] == [Address.local("x")]
    assert not first.wait_for(lambda m: m.payload == b"for-the-owner", timeout=0.2)


def test_registration_at_an_edge_is_refused(hostile, attackers):
    """The fuzzer of the issue registered relays on the edge through
    forward_to_n3/forwarding_service: an edge (no explicit listener address) is not a relay."""
    net = hostile()
    attacker = attackers(net.attacker())
    reply = attacker.register("evil", via=(FORWARD,))
    assert refused(reply, "not a relay"), describe([reply])
    assert net.incoming_relays("edge") == []


def test_relay_false_refuses_registrations(hostile, attackers):
    net = hostile(edge=False, client=False, relay_node={"relay": False})
    attacker = attackers(net.attacker())
    reply = attacker.register("anything")
    assert refused(reply, "not a relay"), describe([reply])
    assert net.incoming_relays("relay") == []


def test_name_registered_over_a_secure_channel_belongs_to_its_identity(hostile, ockam):
    """The edge registers n3 over a secure channel to the relay: another identity cannot
    take it, even with the edge's link gone."""
    net = hostile(edge_at="/node/relay/secure/api", client=False)
    ockam("identity", "create", "mallory")
    ockam("node", "create", "mallory", "--identity", "mallory")
    net.nodes.append("mallory")
    attempt = ockam.run("relay", "create", RELAY_NAME, "--at", "/node/relay/secure/api", "--to", "mallory",
                        check=False)
    assert attempt.returncode != 0 and "belongs to" in attempt.stderr, attempt.stderr
    net.kill9("edge")
    attempt = ockam.run("relay", "create", RELAY_NAME, "--at", "/node/relay/secure/api", "--to", "mallory",
                        check=False)
    assert attempt.returncode != 0 and "belongs to" in attempt.stderr, attempt.stderr


def test_registration_reply_secret_is_on_the_wire(hostile, attackers):
    """The reply layout itself: `00 | string address | data secret`."""
    net = hostile(edge=False, client=False)
    attacker = attackers(net.attacker())
    reply_to = Address.random_local()
    attacker.send_message((Address.local("forwarding_service"),), (reply_to,), registration_request("wire-check"))
    got = attacker.wait_for(attacker.to(reply_to), timeout=3.0)
    assert got, "no reply"
    payload = got[0].payload
    name = b"forward_to_wire-check"
    assert payload[:2 + len(name)] == b"\x00" + bytes((len(name),)) + name
    assert payload[2 + len(name):][:1] == b"\x10" and len(payload) == 2 + len(name) + 1 + 16, payload.hex()
