"""Relay names cannot be stolen: a name belongs to the identity that registered it over a
secure channel, or to whoever holds the secret its registration reply carried, for as long
as it is live and for the grace period after its link is lost."""

import logging

import pytest

from appliance.limits.budgets import Limits
from appliance.node.relays.relay import RelayClient, RelayRefused, SecretBook
from appliance.secure.identity import Identity
from tests.helpers import wait_until
from tests.node.conftest import RawPeer


@pytest.fixture(autouse=True)
def fast_relay_timers(monkeypatch):
    monkeypatch.setattr(RelayClient, "BACKOFF_START", 0.05)
    monkeypatch.setattr(RelayClient, "BACKOFF_MAX", 0.2)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def relay(make_node):
    node = make_node("relay", relay_grace=30)
    node.forwarding.clock = FakeClock()
    return node


def test_a_stranger_cannot_take_a_live_name_nor_one_lost_within_the_grace(make_node, relay):
    edge = make_node("edge", listen=False)
    edge.control.relay_create("n3", "/node/relay")
    stranger = RawPeer(make_node.listener("relay"))
    refused = stranger.register("n3")
    assert (refused.ok, refused.text) == (False, "relay forward_to_n3 is taken at node relay")

    edge.shutdown()  # its link is lost: the name waits for it
    wait_until(lambda: "forward_to_n3" not in relay.forwarding.relays, what="the relay to drop the registration")
    relay.forwarding.clock.now += 29.9
    assert stranger.register("n3", secret=b"\x00" * 16).text == "relay forward_to_n3 is taken at node relay"
    relay.forwarding.clock.now += 0.1  # the grace is over: the name is free
    assert stranger.register("n3").ok
    assert relay.node.counters["relays_refused"] == 2


def test_the_secret_takes_the_name_back_at_once_even_while_the_old_link_looks_alive(make_node, relay):
    secrets = SecretBook()
    first = make_node("edge", listen=False, relay_secrets=secrets)
    first.control.relay_create("n3", "/node/relay")
    old_link = relay.forwarding.relays["forward_to_n3"].link
    # the same edge after a restart (same state directory), while the relay has not yet
    # noticed that the old link is half-open
    second = make_node("edge-restarted", listen=False, relay_secrets=secrets)
    second.control.relay_create("n3", "/node/relay")
    taken = relay.forwarding.relays["forward_to_n3"]
    assert taken.link != old_link and old_link in relay.node.workers
    client = make_node("client")
    reply = client.control.message_send("/node/relay/service/forward_to_n3/service/echo", "to whom?")
    assert reply["reply"] == "to whom?"
    assert second.node.counters.get("worker_errors", 0) == 0 and relay.forwarding.relays == {"forward_to_n3": taken}


def test_a_name_registered_over_a_secure_channel_belongs_to_that_identity(make_node, relay):
    owner = Identity.generate()
    edge = make_node("edge", listen=False, identity=owner)
    edge.control.relay_create("n3", "/node/relay/secure/api")
    stranger = make_node("stranger", listen=False)
    expected = f"relay forward_to_n3 belongs to {owner.identifier} at node relay"
    with pytest.raises(RelayRefused, match=expected):
        stranger.control.relay_create("n3", "/node/relay/secure/api")
    edge.shutdown()
    wait_until(lambda: "forward_to_n3" not in relay.forwarding.relays, what="the relay to drop the registration")
    relay.forwarding.clock.now += 3600  # no grace runs out for an identity's name
    with pytest.raises(RelayRefused, match=expected):
        stranger.control.relay_create("n3", "/node/relay/secure/api")
    assert RawPeer(make_node.listener("relay")).register("n3", secret=b"\x01" * 16).text == expected
    make_node("edge-again", listen=False, identity=owner).control.relay_create("n3", "/node/relay/secure/api")


def test_a_node_that_is_not_a_relay_refuses_registrations_even_through_a_relay(make_node, relay):
    edge = make_node("edge", listen=False, relay=False)
    edge.control.relay_create("n3", "/node/relay")
    stranger = RawPeer(make_node.listener("relay"))
    reply = stranger.register("evil", via=["forward_to_n3"])  # to the edge's forwarding_service
    assert (reply.ok, reply.text) == (False, "node edge is not a relay (give it a TCP listener address, "
                                             "or relay = true)")
    assert edge.forwarding.relays == {} and edge.node.counters["relays_refused"] == 1


def test_registrations_per_connection_and_per_node_are_bounded(make_node):
    relay = make_node("relay", limits=Limits(relays_per_connection=3, relays_per_node=5))
    one = RawPeer(make_node.listener("relay"))
    assert [one.register(f"a{i}").ok for i in range(4)] == [True, True, True, False]
    assert one.register("a9").text == "too many relays over one connection at node relay (at most 3)"
    two = RawPeer(make_node.listener("relay"))
    assert [two.register(f"b{i}").ok for i in range(3)] == [True, True, False]
    assert two.register("b9").text == "too many relays at node relay (at most 5)"
    assert len(relay.forwarding.relays) == 5 and relay.node.counters["relays_refused"] == 4


def test_relay_authorized_refusals_are_logged_once_per_peer(make_node, caplog):
    make_node("relay", relay_authorized=[Identity.generate().identifier])
    stranger = RawPeer(make_node.listener("relay"))
    with caplog.at_level(logging.INFO, logger="appliance.node.relays.relay"):
        replies = [stranger.register("n3") for _ in range(20)]
    assert {r.ok for r in replies} == {False}
    logged = [r for r in caplog.records if r.levelno >= logging.INFO and "refused" in r.getMessage()]
    assert len(logged) == 1


def test_a_full_node_forgets_an_identitys_name_lost_long_ago_never_one_in_its_grace(make_node):
    relay = make_node("relay", relay_grace=30, limits=Limits(relays_per_node=3))
    relay.forwarding.clock = clock = FakeClock()
    squatter = make_node("squatter", listen=False)
    for i in range(2):
        squatter.control.relay_create(f"junk{i}", "/node/relay/secure/api")  # identity-bound: no grace runs out
    edge = make_node("edge", listen=False)
    edge.control.relay_create("shop", "/node/relay")
    squatter.shutdown()
    edge.shutdown()  # the edge's link blips: its name waits 30 s for it
    wait_until(lambda: not relay.forwarding.relays, what="the relays to be lost")
    stranger = RawPeer(make_node.listener("relay"))
    assert stranger.register("other").text == "too many relays at node relay (at most 3)"
    clock.now += 600  # the identity's names were lost long ago; the edge's grace is long over too
    assert stranger.register("other").ok
    assert relay.node.counters["relay_names_forgotten"] == 0  # the expired plain name made room
    assert stranger.register("more").ok and relay.node.counters["relay_names_forgotten"] == 1


def test_a_registration_whose_reply_was_lost_keeps_the_secret_that_works(make_node):
    make_node("relay")
    first = RawPeer(make_node.listener("relay"))
    secret = first.register("n3").secret
    again = RawPeer(make_node.listener("relay"))  # the edge registers again; the reply never reaches it
    assert again.register("n3", secret).secret == secret
    first.sock.close()
    again.sock.close()
    assert RawPeer(make_node.listener("relay")).register("n3", secret).ok
