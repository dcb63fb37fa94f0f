"""The project authority and credential trust, in-process."""

import time

import pytest

from appliance.node.errors import BadArgument, NotFound, RouteError
from appliance.node.project.info import BOX_ATTRIBUTE, AccessRoute, ProjectError, ProjectInfo, ProjectNode
from appliance.node.project.trust import Trust
from appliance.node.relays.relay import RelayRefused
from appliance.secure import credential as credentials
from appliance.secure.identity import Identity
from appliance.wire import multiaddr
from appliance.wire.address import Address
from appliance.wire.errors import MultiaddrError
from tests.helpers import wait_until
from tests.node.test_recovery import echo_once


@pytest.fixture
def project(make_node):
    saved = []
    authority_identity = Identity.generate()
    node = make_node("project", identity=authority_identity,
                     project_node=ProjectNode("default", "", {}, saved.append, credential_ttl=60))
    host, port = make_node.listener("project").rsplit(":", 1)
    info = ProjectInfo("default", host, int(port), authority_identity.public_key)
    return node, info, saved


def test_tickets_are_single_use_and_enrollment_is_persisted(project, make_node):
    node, info, saved = project
    token = node.authority.create_ticket({"role": "edge"})
    member = make_node("member", projects=[info])
    assert member.control.project_enroll(info.to_json(), token)["identifier"] == member.identifier
    assert saved[-1]["members"][member.identifier] == {"role": "edge"}
    other = make_node("other", projects=[info])
    with pytest.raises(Exception, match="not valid"):
        other.control.project_enroll(info.to_json(), token)


def test_expired_ticket_is_refused(project, make_node):
    node, info, _ = project
    token = node.authority.create_ticket({}, ttl=-1)
    with pytest.raises(Exception, match="not valid"):
        make_node("late", projects=[info]).control.project_enroll(info.to_json(), token)


def test_members_get_credentials_and_may_create_relays(project, make_node):
    node, info, _ = project
    member = make_node("member", projects=[info])
    with pytest.raises(RelayRefused, match="not a member"):
        member.control.relay_create("m", "/project/default")
    assert member.trust.own == {}
    member.control.project_enroll(info.to_json(), node.authority.create_ticket({"relay": "m"}))
    assert member.control.relay_create("m", "/project/default")["address"] == "/service/forward_to_m"
    cred = member.trust.own["default"]
    assert credentials.verify(cred, info.authority_key, member.identifier, int(time.time())) == {"relay": "m"}


def test_project_route_pins_the_project_identity(make_node):
    make_node("impostor")
    host, port = make_node.listener("impostor").rsplit(":", 1)
    fake = ProjectInfo("default", host, int(port), Identity.generate().public_key)
    client = make_node("client", projects=[fake])
    with pytest.raises(Exception, match="not authorized"):
        client.control.message_send("/project/default/service/echo", "x")
    assert client.node.counters["handshakes_failed"] == 1


def test_trust_only_believes_valid_credentials():
    authority, member, other = Identity.generate(), Identity.generate(), Identity.generate()
    info = ProjectInfo("default", "127.0.0.1", 1, authority.public_key)
    trust = Trust([info])
    now = int(time.time())
    good = credentials.issue(authority, "default", member.identifier, {"role": "edge"}, now, 60)
    forged = credentials.issue(other, "default", member.identifier, {"role": "admin"}, now, 60)
    stolen = credentials.issue(authority, "default", other.identifier, {"role": "admin"}, now, 60)
    trust.learn(member.identifier, [forged.encode(), stolen.encode(), b"garbage"])
    assert trust.attributes_of(member.identifier, "default") is None
    trust.learn(member.identifier, [good.encode()])
    assert trust.attributes_of(member.identifier, "default") == {"role": "edge"}
    expired = credentials.issue(authority, "default", other.identifier, {"role": "edge"}, now - 100, 50)
    trust.learn(other.identifier, [expired.encode()])
    assert trust.attributes_of(other.identifier, "default") is None


def project_and_box(make_node, credential_ttl: int = 60) -> tuple:
    """A project node and one more relay box `box` (a member enrolled with a relay box
    ticket, serving the project's members); returns (project node, box, info naming both)."""
    authority_identity = Identity.generate()
    node = make_node("project", identity=authority_identity,
                     project_node=ProjectNode("default", "", {}, lambda _members: None, credential_ttl=credential_ttl))
    info = ProjectInfo.from_json(node.control.project_info())
    box = make_node("box", projects=[info], relay_box_of="default")
    box.control.project_enroll(info.to_json(), node.control.project_ticket(box=make_node.listener("box"))["token"])
    return node, box, ProjectInfo.from_json(node.control.project_info())


@pytest.fixture
def project_with_a_box(make_node):
    return project_and_box(make_node)


def test_a_relay_box_ticket_makes_project_information_list_the_box(project_with_a_box, make_node):
    node, box, info = project_with_a_box
    host, port = make_node.listener("box").rsplit(":", 1)
    assert info.boxes == (AccessRoute(host, int(port), box.identifier),)
    routes = node.control.project_info()["access_routes"]
    assert routes == [{"route": f"/dnsaddr/{make_node.listener('project').replace(':', '/tcp/')}/service/api",
                       "identity": node.identifier},
                      {"route": f"/dnsaddr/{host}/tcp/{port}/service/api", "identity": box.identifier}]
    with pytest.raises(BadArgument, match="set by --relay-box only"):
        node.control.project_ticket({BOX_ATTRIBUTE: "127.0.0.1:1"})
    with pytest.raises(MultiaddrError, match="wildcard"):
        node.control.project_ticket(box="0.0.0.0:4000")
    assert ProjectInfo.from_json(info.to_json()) == info


def test_a_member_registers_at_every_box_and_the_box_believes_credentials(project_with_a_box, make_node):
    node, box, info = project_with_a_box
    outsider = make_node("outsider", projects=[info])
    with pytest.raises(RelayRefused, match="not a member of project default"):
        outsider.control.relay_create("m", "/project/default")
    box_api = "/ip4/{}/tcp/{}/secure/api".format(*make_node.listener("box").rsplit(":", 1))
    with pytest.raises(RelayRefused, match=f"^{outsider.identifier} presented no unexpired credential of "
                                           "project default in its secure channel to relay box box$"):
        outsider.control.relay_create("m", box_api)
    member = make_node("member", projects=[info])
    member.control.project_enroll(info.to_json(), node.authority.create_ticket({"relay": "m"}))
    created = member.control.relay_create("m", "/project/default")
    box_label = f"/project/default[{make_node.listener('box')}]"
    assert [(each["at"], each["state"]) for each in created["at_each"]] == [("/project/default", "up"),
                                                                          (box_label, "up")]
    assert "forward_to_m" in box.forwarding.relays and "forward_to_m" in node.forwarding.relays
    with pytest.raises(RelayRefused, match="may only create relay m in project default"):
        member.control.relay_create("other", "/project/default")
    # one box's registration alone can go, the other stays
    member.control.relay_delete("m", at=box_label)
    assert [client.at_text for client in member.relays.named("forward_to_m")] == ["/project/default"]
    with pytest.raises(NotFound, match=r"no relay 'm' at /project/default\[.*\] on this node"):
        member.control.relay_delete("m", at=box_label)


def test_an_inlet_through_a_project_fails_over_to_its_other_box(project_with_a_box, make_node, echo_server):
    node, box, info = project_with_a_box
    edge = make_node("edge", projects=[info])
    edge.control.project_enroll(info.to_json(), node.authority.create_ticket({}))
    edge.control.relay_create("edge", "/project/default")
    edge.control.outlet_create(echo_server)
    client = make_node("client", projects=[info])
    inlet = client.control.inlet_create("127.0.0.1:0", "/project/default/service/forward_to_edge/service/outlet")
    box_label = f"/project/default[{make_node.listener('box')}]/service/forward_to_edge/service/outlet"
    assert [(r["route"], r["state"]) for r in inlet["routes"]] == [
        ("/project/default/service/forward_to_edge/service/outlet", "up"), (box_label, "up")]
    assert echo_once(inlet["bind_address"]) == b"are you there?"
    node.shutdown()  # the project node goes: the box carries on
    wait_until(lambda: client.control.inlet_show(inlet["alias"])["routes"][0]["state"] != "up", timeout=15,
               what="the inlet to see the project node gone")
    assert echo_once(inlet["bind_address"]) == b"are you there?"
    assert client.control.inlet_show(inlet["alias"])["routes"][1]["connections_total"] >= 1


def test_a_members_credential_outlives_its_restart(project, make_node):
    """Kept (credential_store) for the identity that holds it; another identity, another
    project, an expired or damaged one are not taken back."""
    node, info, _ = project
    kept, saves = {}, []
    identity = Identity.generate()
    member = make_node("member", identity=identity, projects=[info], credential_store=(kept, saves.append))
    member.control.project_enroll(info.to_json(), node.authority.create_ticket({"role": "edge"}))
    assert saves[-1] == {"default": member.trust.own["default"].encode().hex()}
    again = Trust([info], kept=saves[-1], holder=identity.identifier)
    assert again.own == member.trust.own
    now = int(time.time())
    expired = credentials.issue(node.channels.identity, "default", identity.identifier, {}, now - 100, 50)
    for kept in ({"default": expired.encode().hex()}, {"other": saves[-1]["default"]}, {"default": "zz"}):
        assert Trust([info], kept=kept, holder=identity.identifier).own == {}
    assert Trust([info], kept=saves[-1], holder=Identity.generate().identifier).own == {}


def test_a_box_takes_a_registration_only_over_a_channel_that_carries_a_credential(project_with_a_box, make_node):
    """The box knew the member from another channel: not enough (that relay would outlive
    the member's removal: nothing closes a channel that proved nothing)."""
    node, box, info = project_with_a_box
    member = make_node("member", projects=[info])
    member.control.project_enroll(info.to_json(), node.authority.create_ticket({}))
    member.control.relay_create("m", "/project/default")
    assert box.trust.attributes_of(member.identifier, "default") == {}
    member.trust.own.clear()
    box_api = "/ip4/{}/tcp/{}/secure/api".format(*make_node.listener("box").rsplit(":", 1))
    with pytest.raises(RelayRefused, match="presented no unexpired credential of project default"):
        member.control.relay_create("n", box_api)


def test_removed_members_and_boxes_lapse_with_their_credentials(make_node):
    node, box, info = project_and_box(make_node, credential_ttl=2)
    member = make_node("member", projects=[info])
    member.control.project_enroll(info.to_json(), node.authority.create_ticket({}))
    assert len(member.control.relay_create("m", "/project/default")["at_each"]) == 2
    node.control.project_member_remove(member.identifier)
    wait_until(lambda: "forward_to_m" not in box.forwarding.relays, timeout=10,
               what="the removed member's relay at the box to end with its credential")
    # a box removed from the project: members stop using it once its credential lapses
    _, box_route = member.resolver.each_box("/project/default")[1]
    other = make_node("other", projects=[info])
    other.control.project_enroll(info.to_json(), node.authority.create_ticket({}))
    assert other.resolver.resolve("/project/default/service/echo", box=box_route).route
    node.control.project_member_remove(box.identifier)
    wait_until(lambda: _fails(lambda: other.resolver.resolve("/project/default/service/echo", box=box_route)),
               timeout=10, what="the removed box to be refused")
    with pytest.raises(RouteError, match=rf"^/project/default\[{make_node.listener('box')}\]: {box.identifier} "
                                         "showed no credential of project default making it its relay box"):
        other.resolver.resolve("/project/default/service/echo", box=box_route)


def _fails(action) -> bool:
    try:
        action()
    except RouteError:
        return True
    return False


def test_kept_credentials_are_only_taken_back_from_the_authority_that_signed_them(project):
    node, info, _ = project
    holder = Identity.generate()
    now = int(time.time())
    good = credentials.issue(node.channels.identity, "default", holder.identifier, {}, now, 60)
    assert Trust([info], kept={"default": good.encode().hex()}, holder=holder.identifier).own == {"default": good}
    remade = info._replace(authority_key=Identity.generate().public_key)  # the project made anew, same name
    assert Trust([remade], kept={"default": good.encode().hex()}, holder=holder.identifier).own == {}
    assert Trust([], kept={"default": good.encode().hex()}, holder=holder.identifier).own == {}
    assert Trust([info], kept=["not", "a", "dict"], holder=holder.identifier).own == {}


def test_an_older_ticket_does_not_hide_the_boxes_project_json_lists(project_with_a_box, make_node):
    node, box, info = project_with_a_box
    old_ticket_info = info._replace(boxes=())
    member = make_node("member", projects=[info])
    member.control.project_enroll(old_ticket_info.to_json(), node.authority.create_ticket({}))
    assert member.trust.projects["default"].boxes == info.boxes
    assert len(member.control.relay_create("m", "/project/default")["at_each"]) == 2


def test_one_box_per_address(project_with_a_box, make_node):
    node, box, info = project_with_a_box
    with pytest.raises(BadArgument, match=rf"has a relay box at {make_node.listener('box')} already "
                                          rf"\({box.identifier}\): remove that member first"):
        node.control.project_ticket(box=make_node.listener("box"))
    with pytest.raises(BadArgument, match="takes no relay name"):
        node.control.project_ticket({"relay": "x"}, box="127.0.0.1:4000")
    for bad in ("a/b:4000", "a b:4000", "127.0.0.1:0"):
        with pytest.raises(MultiaddrError):
            node.control.project_ticket(box=bad)
    # a box reinstalled (a new identity) at the same address replaces the old one
    reinstalled = Identity.generate().identifier
    node.authority.members["members"][reinstalled] = {BOX_ATTRIBUTE: make_node.listener("box")}
    assert [b.identifier for b in node.authority.boxes()] == [reinstalled]
    twice = info.to_json()
    twice["access_routes"].append(dict(twice["access_routes"][1], identity=reinstalled))
    assert ProjectInfo.from_json(twice).boxes == (info.boxes[0]._replace(identifier=reinstalled),)
    # a ticket made since (the authority's word) wins over an older project.json at an address
    assert info.merged(ProjectInfo.from_json(twice)).boxes == (info.boxes[0]._replace(identifier=reinstalled),)


@pytest.mark.parametrize("route", ["/dnsaddr/h/tcp/0/service/api", "/ip4/1.2.3/tcp/1/service/api",
                                   "/dnsaddr/a b/tcp/1/service/api", "/dnsaddr/h/tcp/99999999/service/api",
                                   "/service/api", 7])
def test_a_hostile_project_description_is_a_project_error(project, route):
    _, info, _ = project
    for data in (dict(info.to_json(), access_route=route),
                 dict(info.to_json(), access_routes=[{}, {"route": route, "identity": info.identifier}])):
        with pytest.raises(ProjectError, match="not a valid project description"):
            ProjectInfo.from_json(data)


def test_a_peer_of_two_projects_is_known_in_each():
    a, b, member = Identity.generate(), Identity.generate(), Identity.generate()
    trust = Trust([ProjectInfo("a", "127.0.0.1", 1, a.public_key), ProjectInfo("b", "127.0.0.1", 2, b.public_key)])
    now = int(time.time())
    proved = trust.learn(member.identifier, [credentials.issue(a, "a", member.identifier, {"x": "1"}, now, 60).encode(),
                                             credentials.issue(b, "b", member.identifier, {"y": "2"}, now, 600).encode()])
    assert proved == {"a": now + 60, "b": now + 600}
    assert trust.attributes_of(member.identifier, "a") == {"x": "1"}
    assert trust.attributes_of(member.identifier, "b") == {"y": "2"}
    assert trust.attribute_sets(member.identifier) == [{"x": "1"}, {"y": "2"}]


def test_an_ipv6_project_node_is_written_so_that_it_reads_back(make_node):
    node = make_node("project", listen=False, project_node=ProjectNode("default", "[::1]:7000", {}, lambda _m: None))
    described = node.control.project_info()
    assert described["access_route"] == "/ip6/::1/tcp/7000/service/api"
    assert ProjectInfo.from_json(described).access[0].target == multiaddr.Tcp("::1", 7000)
    earlier = dict(described, access_route="/dnsaddr/::1/tcp/7000/service/api")  # as an earlier version wrote it
    earlier.pop("access_routes")
    assert ProjectInfo.from_json(earlier).access[0].target == multiaddr.Tcp("::1", 7000)


def test_a_box_without_a_credential_keeps_asking_for_one(project_with_a_box):
    node, box, _ = project_with_a_box
    box.trust.forget("default")  # say, restarted while the project node was down, its credential lapsed
    wait_until(lambda: "default" in box.trust.own, timeout=10, what="the box to fetch a credential again")


def test_a_member_restarted_after_its_removal_knows_it_is_out(project, make_node):
    node, info, _ = project
    member = make_node("member", projects=[info])
    member.control.project_enroll(info.to_json(), node.authority.create_ticket({}))
    assert member.membership.fetch_now("default") is True
    node.control.project_member_remove(member.identifier)
    assert member.membership.fetch_now("default") is False and member.trust.own == {}


def test_one_projects_credential_lapsing_ends_what_it_allowed_not_the_channel(make_node):
    a = make_node("a")
    end = a.channels.create((Address.local("api"),), "local")  # an in-node channel: its responder end is a's too
    lapsed = []
    a.channels.on_lapse(lambda channel, project: lapsed.append((channel, project)))
    end._credentials_until({"p": time.time() + 0.2, "q": time.time() + 60})
    wait_until(lambda: lapsed, timeout=5, what="p to lapse")
    assert lapsed == [(end, "p")] and not end.closed and end.proved == {"q": end.proved["q"]}
    end._credentials_until({"q": time.time() + 0.2})  # q presented again, shorter: the later one counts
    assert end.proved_until("q") > time.time() + 50


def test_ticket_attributes_are_text(project):
    node, _, _ = project
    for attributes, relay in (({"x": 1}, None), ({1: "x"}, None), (["ab"], None), ({}, 5)):
        with pytest.raises(BadArgument):
            node.control.project_ticket(attributes, relay)


def test_an_outlet_allows_a_peer_when_any_of_its_credentials_says_so(make_node, echo_server):
    a = make_node("a")
    a.control.outlet_create(echo_server, allow={"role": "edge"})
    outlet = a.portals.outlets["outlet"]
    outlet.attribute_sets = lambda _peer: [{}, {"role": "edge"}]  # a member of two projects
    assert outlet._refusal("I" + "0" * 40) is None
    outlet.attribute_sets = lambda _peer: [{"role": "other"}]
    assert outlet._refusal("I" + "0" * 40) == "credential lacks {'role': 'edge'}"


def test_a_box_ends_what_a_lapsed_credential_allowed_and_its_registrant_sees_it(make_node):
    """When a member's credential of the box's project lapses, its relays there end, its names
    are free for other members, and the channel closes: the member registers again (and is
    refused while it has no fresh credential). Another project's lapse changes nothing.
    The box's own credential outlives the test: were it to lapse first, the member would close
    the channel (it holds the box to it too), and the box would only have lost a link."""
    node, box, info = project_and_box(make_node)
    node.authority.credential_ttl = 2  # the member's, issued from now on
    member = make_node("member", projects=[info])
    member.control.project_enroll(info.to_json(), node.authority.create_ticket({}))
    member.control.relay_create("m", "/project/default")
    end = box.channels.first_hop((box.forwarding.relays["forward_to_m"].link,))
    box.channels.lapsed(end, "other")
    assert "forward_to_m" in box.forwarding.relays and not end.closed
    at_box = member.relays.clients[("forward_to_m", f"/project/default[{make_node.listener('box')}]")]
    registrations = at_box.registrations
    node.shutdown()  # the project node goes: nobody gets a fresh credential, and theirs lapse
    wait_until(lambda: "forward_to_m" not in box.forwarding.relays and end.closed, timeout=10,
               what="the lapsed credential's relay to end at the box")
    assert "forward_to_m" not in box.forwarding.claims  # free for another member
    wait_until(lambda: not at_box.condition.is_up, timeout=10, what="the member to see its relay gone")
    assert at_box.registrations == registrations


def test_a_non_member_asks_the_project_node_once_then_goes_to_the_box_without_waiting(project_with_a_box, make_node):
    node, box, info = project_with_a_box
    asked = []
    handle = node.authority.handle
    node.authority.handle = lambda msg: (asked.append(msg.peer), handle(msg))
    client = make_node("client", projects=[info])  # not a member: an inlet's node, say
    _, box_route = client.resolver.each_box("/project/default")[1]
    assert client.resolver.resolve("/project/default/service/echo", box=box_route, reuse=False).route
    assert asked == [client.identifier] and client.membership._fetching == {}
    assert client.resolver.resolve("/project/default/service/echo", box=box_route, reuse=False).route
    assert asked == [client.identifier] and client.membership._fetching == {}  # not asked again, nothing waited on
