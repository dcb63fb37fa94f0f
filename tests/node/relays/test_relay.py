"""Relays between in-process nodes: registration, forwarding, refusal and recovery."""

import pytest

from appliance.node.errors import AddressInUse, RouteError
from appliance.node.relays.relay import RelayClient, RelayRefused
from appliance.wire.errors import BadRelayName
from tests.helpers import port_of, wait_until


@pytest.fixture(autouse=True)
def fast_relay_timers(monkeypatch):
    monkeypatch.setattr(RelayClient, "BACKOFF_START", 0.05)
    monkeypatch.setattr(RelayClient, "BACKOFF_MAX", 0.2)
    monkeypatch.setattr(RelayClient, "PING_INTERVAL", 0.2)
    monkeypatch.setattr(RelayClient, "PING_TIMEOUT", 0.2)


def test_seed_message_through_a_relay(make_node):
    make_node("n2")
    private, client = make_node("n3"), make_node("n1")
    created = private.control.relay_create("n3", "/node/n2")
    assert created["address"] == "/service/forward_to_n3"
    reply = client.control.message_send("/node/n2/service/forward_to_n3/service/uppercase", "hello")
    assert reply["reply"] == "HELLO"


def test_relay_node_only_forwards_to_the_dialled_out_connection(make_node):
    make_node("n2")
    private, client = make_node("n3"), make_node("n1")
    private.control.relay_create("n3", "/node/n2")
    client.control.message_send("/node/n2/service/forward_to_n3/service/echo", "x")
    # n3 never received an incoming connection: it dialled out to n2
    assert [c.outgoing for c in private.tcp.connections.values()] == [True]


def test_duplicate_relay_name_is_refused(make_node):
    make_node("n2")
    first, second = make_node("n3"), make_node("other")
    first.control.relay_create("n3", "/node/n2")
    with pytest.raises(RelayRefused, match="relay forward_to_n3 is taken at node n2"):
        second.control.relay_create("n3", "/node/n2")
    assert second.control.relay_list() == []
    with pytest.raises(AddressInUse):
        first.control.relay_create("n3", "/node/n2")


def test_bad_relay_name_and_route(make_node):
    make_node("n2")
    private = make_node("n3")
    with pytest.raises(BadRelayName, match="bad relay name") as caught:
        private.control.relay_create("no/slash", "/node/n2")
    assert caught.value.exit_code == 2  # the user wrote it
    with pytest.raises(RouteError):
        private.control.relay_create("n3", "/nonsense")


def test_relay_is_removed_when_its_connection_drops(make_node):
    relay, private = make_node("n2"), make_node("n3")
    private.control.relay_create("n3", "/node/n2")
    private.control.relay_delete("n3")
    wait_until(lambda: not relay.forwarding.relays, what="relay n2 to drop forward_to_n3")


def test_relay_re_registers_after_its_connection_is_cut(make_node):
    relay, private, client = make_node("n2"), make_node("n3"), make_node("n1")
    private.control.relay_create("n3", "/node/n2")
    for conn in list(relay.tcp.connections.values()):
        conn.close()  # the relay node loses every connection (as after a network cut)
    wait_until(lambda: private.relays.named("forward_to_n3")[0].registrations >= 2, what="re-registration")
    assert client.control.message_send("/node/n2/service/forward_to_n3/service/uppercase", "back")["reply"] == "BACK"


def test_relay_survives_the_relay_node_restarting(make_node):
    relay, private = make_node("n2"), make_node("n3")
    address = make_node.listener("n2")
    private.control.relay_create("n3", "/node/n2")
    relay.shutdown()
    client_side = private.relays.named("forward_to_n3")[0]
    wait_until(lambda: client_side.remote_route is None, what="the loss to be noticed")
    again = make_node("n2-again", listen=False)
    again.tcp.listen(address)
    wait_until(lambda: "forward_to_n3" in again.forwarding.relays, what="registration at the new relay node")
    client = make_node("n1")
    port = address.rsplit(":", 1)[1]
    assert client.control.message_send(f"/ip4/127.0.0.1/tcp/{port}/service/forward_to_n3/service/echo", "x")["reply"] == "x"


def test_relay_node_can_require_authorized_registrations(make_node):
    from appliance.secure.identity import Identity

    member = Identity.generate()
    make_node("n2", relay_authorized=[member.identifier])
    private = make_node("n3", identity=member)
    stranger = make_node("stranger")
    with pytest.raises(RelayRefused, match="an unauthenticated node may not create relays"):
        private.control.relay_create("plain", "/node/n2")
    with pytest.raises(RelayRefused, match=f"{stranger.identifier} may not create relays"):
        stranger.control.relay_create("other", "/node/n2/secure/api")
    assert private.control.relay_create("n3", "/node/n2/secure/api")["address"] == "/service/forward_to_n3"
    client = make_node("n1")
    assert client.control.message_send("/node/n2/service/forward_to_n3/service/uppercase", "in")["reply"] == "IN"


def test_the_same_identity_takes_over_its_relay_name_at_once(make_node):
    from appliance.secure.identity import Identity

    owner = Identity.generate()
    make_node("n2")
    first = make_node("n3", identity=owner)
    first.control.relay_create("n3", "/node/n2/secure/api")
    # a restarted n3 (same identity) registers while the old registration still looks alive
    second = make_node("n3-restarted", identity=owner)
    second.control.relay_create("n3", "/node/n2/secure/api")
    stranger = make_node("stranger")
    with pytest.raises(RelayRefused, match=f"relay forward_to_n3 belongs to {owner.identifier} at node n2"):
        stranger.control.relay_create("n3", "/node/n2/secure/api")
    client = make_node("n1")
    reply = client.control.message_send("/node/n2/service/forward_to_n3/secure/api/service/echo", "who")
    assert reply["reply"] == "who"
    assert client.control.secure_channel_list()[0]["peer"] == owner.identifier


def test_relay_create_can_require_the_relay_node_identity(make_node):
    relay_node = make_node("n2")
    private = make_node("n3")
    from appliance.node.channels.channel import ChannelRefused

    with pytest.raises(ChannelRefused, match="not authorized"):
        private.control.relay_create("n3", "/node/n2/secure/api", authorized=["I" + "2" * 40])
    assert private.control.relay_create("n3", "/node/n2/secure/api", authorized=[relay_node.identifier])


def test_a_registration_whose_connection_is_reset_fails_at_once(make_node, tcp_service):
    """A relay that accepts and then dies (as one being killed does) must not cost the
    full registration timeout: the lost link fails the attempt, and the retry comes soon."""
    import time

    def accept_then_reset(sock, _addr):
        sock.recv(1)
        sock.close()

    service = tcp_service(accept_then_reset)
    edge = make_node("edge", listen=False)
    started = time.monotonic()
    with pytest.raises(RouteError, match="was lost during the relay registration"):
        edge.control.relay_create("edge", f"/ip4/127.0.0.1/tcp/{port_of(service)}")
    assert time.monotonic() - started < RelayClient.REGISTER_TIMEOUT / 2


@pytest.mark.pure_only("Node.route")
def test_a_secret_kept_by_name_alone_goes_to_no_relay_node_of_several(make_node):
    """Before relays at several nodes, a secret was kept by the name alone; with several
    relay nodes it is no one's in particular, and must not be shown to all of them."""
    from appliance.node.relays.relay import SecretBook
    from appliance.wire import relay as relay_wire

    make_node("r1"), make_node("r2")
    legacy = "ab" * 16
    edge = make_node("edge", listen=False, relay_secrets=SecretBook({"forward_to_e": legacy}))
    sent = []
    original = edge.node.route

    def spy(msg):
        if msg.onward and msg.onward[-1].inner == b"forwarding_service":
            sent.append(relay_wire.decode_request(msg.payload)[1].hex())
        original(msg)

    edge.node.route = spy
    edge.control.relay_create("e", ["/node/r1", "/node/r2"])
    assert len(sent) == 2 and legacy not in sent
    sent.clear()
    edge.relays.secrets.put("forward_to_e2", bytes.fromhex(legacy))  # kept by name alone, as before 15
    edge.control.relay_create("e2", "/node/r1")  # its only relay node: the old secret is its
    assert sent == [legacy]
