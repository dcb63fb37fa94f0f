"""Issue 11, row 1: one message through `forward_to_n3` carrying a 64-hop return route. The
relay added its own hop (65), the edge's decoder rejected the frame and closed the whole relay
link; repeated, the relay link never stayed up and established portal connections hung.

Spec 1 ("no message closes a link"): a message whose route would exceed 64 hops once a node
adds its own hop is dropped at that node (`dropped_route_too_long`); one whose frame would
exceed 1 MiB on the next link is dropped by the sending node (`dropped_too_large`); a frame
whose body is no transport message is dropped (`dropped_bad_messages`) and its connection
stays open. Framing-level garbage still closes that one connection.
"""

from __future__ import annotations

import pytest

from appliance.wire.address import Address
from appliance.wire.framing import DEFAULT_MAX_FRAME, encode_frame_header
from appliance.wire.transport import encode_head
from tests.hostile.attacker import ATTACKER, hops, wait_closed
from tests.hostile.conftest import Transfer, transfer_ok

pytestmark = pytest.mark.timeout(60)

ATTACKS = 20
FORWARD = Address.local("forward_to_n3")
ECHO = Address.local("echo")


def link_facts(net) -> dict:
    """What says the relay link is the one from before: the edge registered once, and the
    relay still forwards n3 over the same connection."""
    incoming = {r["name"]: r["remote_route"] for r in net.incoming_relays("relay")}
    return {"edge registrations": net.registrations(), "n3 at the relay": incoming.get("forward_to_n3")}


@pytest.mark.parametrize("return_hops, dropped_at", [(64, "relay"), (63, "edge"), (62, None)],
                         ids=["64-hops-dropped-at-relay", "63-hops-dropped-at-edge", "62-hops-echoed"])
def test_long_return_route_is_dropped_where_it_would_grow_past_64(hostile, attackers, return_hops, dropped_at):
    """20 messages to forward_to_n3/echo, while a download runs: with 64 hops the relay's own
    hop would make 65, so the relay drops them; with 63 the edge's hop would, so the edge does;
    62 hops become 64 at the edge, which is allowed: they are echoed back. The relay link is
    never touched and the download arrives whole."""
    net = hostile()
    before = link_facts(net)
    attacker = attackers(net.attacker().start_reader())
    route_back = hops(return_hops)
    with Transfer(net.inlet) as transfer:
        for _ in range(ATTACKS):
            assert attacker.send_message((FORWARD, ECHO), route_back, b"poison")
        barrier = attacker.echo(via=(FORWARD,), timeout=5.0)  # in order: the 20 went first
    echoed = attacker.wait_count(lambda m: m.payload == b"poison", ATTACKS if dropped_at is None else 1,
                                 timeout=2.0 if dropped_at is None else 0.2)
    facts = {
        "relay dropped_route_too_long": net.counter("relay", "dropped_route_too_long"),
        "edge dropped_route_too_long": net.counter("edge", "dropped_route_too_long"),
        "echoed back": len(echoed),
        "barrier echo through forward_to_n3": barrier,
        **link_facts(net),
        "download": transfer_ok(transfer),
        "attacker connection open": not attacker.eof.is_set(),
    }
    assert facts == {
        "relay dropped_route_too_long": ATTACKS if dropped_at == "relay" else 0,
        "edge dropped_route_too_long": ATTACKS if dropped_at == "edge" else 0,
        "echoed back": ATTACKS if dropped_at is None else 0,
        "barrier echo through forward_to_n3": True,
        **before,
        "download": True,
        "attacker connection open": True,
    }, f"download: {transfer.error or 'ok'}"


def test_frame_that_would_exceed_1_mib_after_the_relay_hop_is_dropped(hostile, attackers):
    """A frame of exactly 1 MiB to forward_to_n3/echo is legal on the attacker's link; the
    relay's hops make it larger than 1 MiB on the edge link, which the edge would reject by
    closing the link. The relay drops it instead (`dropped_too_large`)."""
    net = hostile()
    before = link_facts(net)
    attacker = attackers(net.attacker().start_reader())
    head = encode_head((FORWARD, ECHO), (ATTACKER,), 0)
    # the payload length prefix grows with the payload: find the size that fills 1 MiB exactly
    size = DEFAULT_MAX_FRAME - len(head)
    while len(encode_head((FORWARD, ECHO), (ATTACKER,), size)) + size > DEFAULT_MAX_FRAME:
        size -= 1
    frame_body = encode_head((FORWARD, ECHO), (ATTACKER,), size) + bytes(size)
    assert len(frame_body) == DEFAULT_MAX_FRAME
    with Transfer(net.inlet) as transfer:
        for _ in range(3):
            assert attacker.send_frame(frame_body)
        barrier = attacker.echo(via=(FORWARD,), timeout=5.0)
    facts = {
        "relay dropped_too_large": net.counter("relay", "dropped_too_large"),
        "echoed back": len([m for m in attacker.received if len(m.payload) == size]),
        "barrier echo through forward_to_n3": barrier,
        **link_facts(net),
        "download": transfer_ok(transfer),
    }
    assert facts == {"relay dropped_too_large": 3, "echoed back": 0, "barrier echo through forward_to_n3": True,
                     **before, "download": True}, f"download: {transfer.error or 'ok'}"


BAD_BODIES = [
    b"\x07",  # unknown transport message version
    b"\x01\x05\x00",  # onward route of 5 hops, truncated
    b"\x01\x01\x00\x04echo\x00\x09abc",  # payload length longer than what follows
    b"\x01\x01\x00\x04echo\x00\x01ab",  # trailing bytes after the payload
]


def test_undecodable_frame_body_is_dropped_and_its_connection_stays(hostile, attackers):
    net = hostile()
    attacker = attackers(net.attacker().start_reader())
    for body in BAD_BODIES:
        assert attacker.send_frame(body)
    still_answers = attacker.echo(timeout=5.0)
    assert {"relay dropped_bad_messages": net.counter("relay", "dropped_bad_messages"),
            "same connection still echoes": still_answers,
            "closed": attacker.eof.is_set()} == \
        {"relay dropped_bad_messages": len(BAD_BODIES), "same connection still echoes": True, "closed": False}


@pytest.mark.parametrize("garbage", [b"\x07", b"\x02" + encode_frame_header(DEFAULT_MAX_FRAME + 1)],
                         ids=["bad-version-byte", "length-over-1-MiB"])
def test_framing_garbage_closes_only_that_connection(hostile, attackers, garbage):
    """Framing-level garbage from the direct peer closes that connection at once, as before;
    the relay link and the portal are not affected."""
    net = hostile()
    before = link_facts(net)
    attacker = attackers(net.attacker(version=False))
    assert attacker.send_raw(garbage)
    closed = wait_closed([attacker], timeout=2.0)
    assert {"closed": bool(closed), **link_facts(net), "portal": net.fetch_ok()} == \
        {"closed": True, **before, "portal": True}
