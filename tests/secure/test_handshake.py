"""The secure channel handshake state machine, sans I/O: two sides passing bytes."""

import os

import pytest

from appliance.secure.errors import HandshakeError, HandshakeRefused, PeerNotAuthorized
from appliance.secure.handshake import TRANSITIONS, ChannelHandshake, HandshakeState
from appliance.secure.identity import Identity
from appliance.secure.suites import default_suite
from appliance.wire import secure_channel as wire

H = HandshakeState


def side(initiator: bool, identity: Identity, authorized=None) -> ChannelHandshake:
    def prove(static_public: bytes) -> bytes:
        return wire.IdentityProof(identity.public_key, identity.attest_static_key(static_public)).encode()
    return ChannelHandshake(default_suite(), initiator, os.urandom(32), prove, authorized)


def run_until_finish(alice_id, bob_id, authorized_by_bob=None):
    alice, bob = side(True, alice_id), side(False, bob_id, authorized_by_bob)
    init = alice.start()
    assert alice.state is H.AWAITING_RESPONSE
    suite_id, noise_message = wire.decode_init(init)
    response = bob.receive_init(noise_message)
    assert bob.state is H.AWAITING_FINISH
    finish = alice.receive(response)
    assert alice.state is H.AWAITING_CONFIRM and alice.peer == bob_id.identifier
    return alice, bob, finish


def test_both_sides_establish_and_share_keys():
    alice_id, bob_id = Identity.generate(), Identity.generate()
    alice, bob, finish = run_until_finish(alice_id, bob_id)
    confirm = bob.receive(finish)
    assert bob.state is H.ESTABLISHED and bob.peer == alice_id.identifier
    assert alice.receive(confirm) is None
    assert alice.state is H.ESTABLISHED
    assert bob.decryptor.decrypt(alice.encryptor.encrypt(b"hello bob")) == b"hello bob"
    assert alice.decryptor.decrypt(bob.encryptor.encrypt(b"hello alice")) == b"hello alice"


def test_an_unauthorized_initiator_is_refused_by_the_responder():
    alice_id, bob_id = Identity.generate(), Identity.generate()
    alice, bob, finish = run_until_finish(alice_id, bob_id, authorized_by_bob={"I" + "0" * 40})
    with pytest.raises(PeerNotAuthorized, match=f"identity {alice_id.identifier} is not authorized"):
        bob.receive(finish)
    assert bob.state is H.FAILED


def test_a_refusal_is_typed_and_not_answered():
    alice = side(True, Identity.generate())
    alice.start()
    with pytest.raises(HandshakeRefused, match="refused by the peer: no thanks"):
        alice.receive(wire.encode_refusal("no thanks"))
    assert alice.state is H.FAILED


def test_a_refusal_instead_of_the_confirmation_is_typed():
    alice, _bob, _finish = run_until_finish(Identity.generate(), Identity.generate())
    with pytest.raises(HandshakeRefused, match="refused by the peer: identity"):
        alice.receive(wire.encode_refusal("identity I00 is not authorized"))


@pytest.mark.parametrize("tamper", ["flip", "truncate", "out of order"])
def test_a_wrong_response_fails_the_handshake(tamper):
    alice, bob = side(True, Identity.generate()), side(False, Identity.generate())
    response = bob.receive_init(wire.decode_init(alice.start())[1])
    if tamper == "flip":
        response = response[:-1] + bytes([response[-1] ^ 1])
    elif tamper == "truncate":
        response = response[:40]
    else:
        response = wire.encode_step(wire.FINISH, response[1:])
    with pytest.raises(HandshakeError):
        alice.receive(response)
    assert alice.state is H.FAILED


def test_garbage_instead_of_the_confirmation_fails():
    alice, _bob, _finish = run_until_finish(Identity.generate(), Identity.generate())
    with pytest.raises(HandshakeError, match="unexpected message instead of the confirmation"):
        alice.receive(os.urandom(40))


def test_the_transition_table_has_one_path_per_role():
    initiator = [(s, e) for (i, s, e) in TRANSITIONS if i]
    responder = [(s, e) for (i, s, e) in TRANSITIONS if not i]
    assert [s for s, _ in initiator] == [H.START, H.AWAITING_RESPONSE, H.AWAITING_CONFIRM]
    assert [s for s, _ in responder] == [H.START, H.AWAITING_FINISH]
