"""The project authority and credential trust, in-process."""

import time

import pytest

from appliance.node.project import ProjectInfo, ProjectNode, Trust
from appliance.node.relay import RelayRefused
from appliance.secure import credential as credentials
from appliance.secure.identity import Identity


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
    assert member.project_enroll(info.to_json(), token)["identifier"] == member.identifier
    assert saved[-1]["members"][member.identifier] == {"role": "edge"}
    other = make_node("other", projects=[info])
    with pytest.raises(Exception, match="not valid"):
        other.project_enroll(info.to_json(), token)


def test_expired_ticket_is_refused(project, make_node):
    node, info, _ = project
    token = node.authority.create_ticket({}, ttl=-1)
    with pytest.raises(Exception, match="not valid"):
        make_node("late", projects=[info]).project_enroll(info.to_json(), token)


def test_members_get_credentials_and_may_create_relays(project, make_node):
    node, info, _ = project
    member = make_node("member", projects=[info])
    with pytest.raises(RelayRefused, match="not a member"):
        member.relay_create("m", "/project/default")
    assert member.trust.own == {}
    member.project_enroll(info.to_json(), node.authority.create_ticket({"relay": "m"}))
    assert member.relay_create("m", "/project/default")["address"] == "/service/forward_to_m"
    cred = member.trust.own["default"]
    assert credentials.verify(cred, info.authority_key, member.identifier, int(time.time())) == {"relay": "m"}


def test_project_route_pins_the_project_identity(make_node):
    make_node("impostor")
    host, port = make_node.listener("impostor").rsplit(":", 1)
    fake = ProjectInfo("default", host, int(port), Identity.generate().public_key)
    client = make_node("client", projects=[fake])
    with pytest.raises(Exception, match="not authorized"):
        client.message_send("/project/default/service/echo", "x")
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
    assert trust.attributes_of(member.identifier) is None
    trust.learn(member.identifier, [good.encode()])
    assert trust.attributes_of(member.identifier) == {"role": "edge"}
    expired = credentials.issue(authority, "default", other.identifier, {"role": "edge"}, now - 100, 50)
    trust.learn(other.identifier, [expired.encode()])
    assert trust.attributes_of(other.identifier) is None
