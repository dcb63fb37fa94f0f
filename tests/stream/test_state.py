"""The portal stream state machine, sans I/O: events in, actions out (a playbook per case)."""

import pytest

from appliance.stream.credit import INITIAL_WINDOW, MAX_SEND_CREDIT, ReceiveWindow
from appliance.stream.errors import FlowControlError, UnexpectedMessage
from appliance.stream.state import TRANSITIONS, Act, PortalStreamState, State
from appliance.wire import portal as wire

W = 1000  # a small window keeps the arithmetic readable


def credit(n):
    return (Act.SEND, wire.encode_credit(n))


def opened_inlet():
    inlet = PortalStreamState.for_inlet(W)
    assert inlet.receive(wire.PONG_TAG, b"") == (credit(W),)  # the ack is our window
    return inlet


def test_outlet_answers_pong_which_grants_its_window_then_waits_for_the_ack():
    outlet, first = PortalStreamState.for_outlet(W)
    assert first == ((Act.SEND, wire.PONG),)
    assert outlet.receive_window.allowed == INITIAL_WINDOW  # the protocol's, whatever our window
    assert outlet.state is State.AWAITING_ACK and outlet.sendable == 0
    assert outlet.receive(wire.CREDIT_TAG, W) == ((Act.WAKE, None),)
    assert outlet.state is State.OPEN and outlet.sendable == W


def test_inlet_opens_on_pong_and_sends_within_the_first_window_pong_grants():
    inlet = opened_inlet()
    assert inlet.state is State.OPEN and inlet.sendable == INITIAL_WINDOW
    inlet.sent(INITIAL_WINDOW - 400)
    assert inlet.sendable == 400
    with pytest.raises(FlowControlError):
        inlet.sent(401)
    assert inlet.receive(wire.CREDIT_TAG, 300) == ()  # not blocked: nothing to wake
    assert inlet.sendable == 700


def test_payload_within_the_window_is_written_and_granted_back_as_the_socket_takes_it():
    inlet = opened_inlet()
    assert inlet.receive(wire.PAYLOAD_TAG, b"x" * 600) == ((Act.WRITE, b"x" * 600),)
    assert inlet.took(200) == ()  # below a quarter of the window: nothing yet
    assert inlet.took(100) == (credit(300),)
    assert inlet.receive(wire.PAYLOAD_TAG, b"y" * 700) == ((Act.WRITE, b"y" * 700),)  # 400 left + 300 back


def test_payload_beyond_the_window_is_a_flow_control_error_and_closes_the_stream():
    inlet = opened_inlet()
    with pytest.raises(FlowControlError, match="peer sent 1001 bytes with 1000 bytes of credit"):
        inlet.receive(wire.PAYLOAD_TAG, b"z" * 1001)
    assert inlet.state is State.CLOSED and inlet.aborted


def test_credit_beyond_any_window_is_refused():
    outlet, _ = PortalStreamState.for_outlet(W)
    with pytest.raises(FlowControlError):
        outlet.receive(wire.CREDIT_TAG, MAX_SEND_CREDIT + 1)
    assert outlet.state is State.CLOSED


def test_half_close_each_way_then_closed():
    inlet = opened_inlet()
    assert inlet.local_eof() == ((Act.SEND, wire.END),)  # the client shut its write side
    assert inlet.state is State.LOCAL_ENDED and inlet.sendable == 0
    assert inlet.receive(wire.PAYLOAD_TAG, b"reply") == ((Act.WRITE, b"reply"),)  # the reply still flows
    assert inlet.receive(wire.END_TAG, b"") == ((Act.CLOSE, None),)
    assert inlet.state is State.CLOSED and not inlet.aborted


def test_remote_end_first_half_closes_our_socket_and_we_keep_sending():
    outlet, _ = PortalStreamState.for_outlet(W)
    outlet.receive(wire.CREDIT_TAG, W)
    assert outlet.receive(wire.END_TAG, b"") == ((Act.SHUT_WRITE, None),)
    assert outlet.state is State.REMOTE_ENDED and outlet.sendable == W
    assert outlet.took(W) == ()  # the peer sends nothing more: no credit for it
    assert outlet.local_eof() == ((Act.SEND, wire.END), (Act.CLOSE, None))
    assert outlet.state is State.CLOSED and not outlet.aborted


@pytest.mark.parametrize("state, tag, value", [
    (State.AWAITING_PONG, wire.PAYLOAD_TAG, b"early"),
    (State.AWAITING_PONG, wire.CREDIT_TAG, 5),
    (State.AWAITING_ACK, wire.PAYLOAD_TAG, b"before the ack"),
    (State.OPEN, wire.PONG_TAG, b""),
    (State.REMOTE_ENDED, wire.PAYLOAD_TAG, b"after End"),
    (State.REMOTE_ENDED, wire.END_TAG, b""),
    (State.OPEN, wire.PING_TAG, b""),
])
def test_messages_the_state_does_not_allow_are_unexpected(state, tag, value):
    stream = PortalStreamState(state, W)
    stream.receive_window.open()
    with pytest.raises(UnexpectedMessage):
        stream.receive(tag, value)
    assert stream.state is State.CLOSED and stream.aborted


def test_disconnect_is_an_abort_that_resets_our_socket_at_once():
    inlet = opened_inlet()
    assert inlet.receive(wire.DISCONNECT_TAG, b"") == ((Act.ABORT, None),)
    assert inlet.state is State.CLOSED and inlet.aborted
    assert inlet.receive(wire.PAYLOAD_TAG, b"late") == ()  # in flight when it closed: dropped


def test_abort_tells_the_peer_and_resets_link_loss_only_resets():
    a, b = opened_inlet(), opened_inlet()
    assert a.abort() == ((Act.SEND, wire.DISCONNECT), (Act.ABORT, None))
    assert a.abort() == ()
    assert b.link_lost() == ((Act.ABORT, None),)
    assert b.state is State.CLOSED and b.aborted


def test_every_transition_leads_somewhere_legal():
    for (state, _event), target in TRANSITIONS.items():
        assert state is not State.CLOSED and isinstance(target, State)


def test_receive_window_grants_back_in_quarters():
    window = ReceiveWindow(4096)
    assert window.open() == 4096
    window.receive(4096)
    with pytest.raises(FlowControlError):
        window.receive(1)
    assert [window.took(512) for _ in range(4)] == [0, 1024, 0, 1024]
    assert window.allowed == 2048


def test_credit_owed_is_flushed_at_a_tick_however_little():
    inlet = opened_inlet()
    inlet.receive(wire.PAYLOAD_TAG, b"x" * 100)
    assert inlet.took(100) == ()  # below the threshold
    assert inlet.flush_credit() == (credit(100),)
    assert inlet.flush_credit() == ()  # nothing owed any more
    inlet.receive(wire.END_TAG, b"")
    inlet.receive_window.taken = 5
    assert inlet.flush_credit() == ()  # the peer sends nothing more: no credit for it
