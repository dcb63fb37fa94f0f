"""Before a portal stream opens, sans I/O: the inlet's Pings and their retries, the Pong it
takes, the ones it turns away, a refusal before Pong, and the timeouts of both sides."""

from appliance.stream.state import PING_RETRY, PONG_TIMEOUT, Act, PortalStreamState, State
from appliance.wire import portal as wire

ALICE, MALLORY = "I" + "a" * 40, "I" + "b" * 40
OUTLET, OTHER = ("tcp", "outlet"), ("tcp", "another outlet stream")


def test_an_inlet_pings_at_once_then_doubts_the_route_and_pings_every_retry_until_the_timeout():
    inlet = PortalStreamState.for_inlet(now=100.0)
    assert inlet.next_timer == 100.0 and inlet.timer(100.0) == ((Act.PING, None),)
    assert inlet.next_timer == 100.0 + PONG_TIMEOUT  # nothing is due while the Ping is being sent
    inlet.pinged(100.3)  # resolving the route took 0.3 s
    assert inlet.next_timer == 100.3 + PING_RETRY and inlet.timer(101.2) == ()
    assert inlet.timer(101.3) == ((Act.DOUBT, None), (Act.PING, None))
    for retry in range(2, 9):
        inlet.pinged(100.3 + retry)
        assert inlet.timer(100.3 + retry + PING_RETRY) == ((Act.DOUBT, None), (Act.PING, None))
    inlet.pinged(109.9)
    assert inlet.next_timer == 100.0 + PONG_TIMEOUT
    assert inlet.timer(110.0) == ((Act.TIMED_OUT, None), (Act.SEND, wire.DISCONNECT), (Act.ABORT, None))
    assert inlet.state is State.CLOSED and inlet.aborted and inlet.next_timer is None
    assert inlet.timer(200.0) == () and inlet.pong(OUTLET, None) == ()


def test_the_first_pong_opens_the_stream_and_a_second_outlet_stream_is_turned_away():
    inlet = PortalStreamState.for_inlet(1000, now=0.0)
    inlet.timer(0.0)
    assert inlet.pong(OUTLET, ALICE) == ((Act.BIND, OUTLET), (Act.SEND, wire.encode_credit(1000)))
    assert inlet.state is State.OPEN and inlet.next_timer is None and inlet.timer(PONG_TIMEOUT) == ()
    assert inlet.pong(OTHER, ALICE) == ((Act.TURN_AWAY, OTHER),)  # it answered a repeated Ping
    assert inlet.pong(OUTLET, ALICE) == ()  # the same stream's again: nothing to do
    assert inlet.state is State.OPEN


def test_a_pong_from_a_peer_that_is_not_authorized_is_ignored_and_the_inlet_keeps_waiting():
    inlet = PortalStreamState.for_inlet(1000, now=0.0, authorized=frozenset({ALICE}))
    inlet.timer(0.0)
    assert inlet.pong(OUTLET, MALLORY) == ((Act.UNAUTHORIZED, MALLORY),)
    assert inlet.pong(OUTLET, None) == ((Act.UNAUTHORIZED, None),)
    assert inlet.state is State.AWAITING_PONG
    assert inlet.pong(OTHER, ALICE)[0] == (Act.BIND, OTHER) and inlet.state is State.OPEN


def test_disconnect_before_pong_is_a_refusal_that_closes_the_client_without_a_reset():
    inlet = PortalStreamState.for_inlet(now=0.0)
    inlet.timer(0.0)
    assert inlet.receive(wire.DISCONNECT_TAG, b"") == ((Act.REFUSED, None), (Act.CLOSE, None))
    assert inlet.state is State.CLOSED and inlet.next_timer is None and inlet.timer(60.0) == ()


def test_an_outlet_stream_nobody_acknowledges_is_reset_after_the_pong_timeout():
    outlet, _ = PortalStreamState.for_outlet(now=50.0)
    assert outlet.next_timer == 50.0 + PONG_TIMEOUT and outlet.timer(59.9) == ()
    assert outlet.timer(60.0) == ((Act.TIMED_OUT, None), (Act.SEND, wire.DISCONNECT), (Act.ABORT, None))
    assert outlet.state is State.CLOSED and outlet.aborted


def test_an_acknowledged_outlet_stream_keeps_no_timer():
    outlet, _ = PortalStreamState.for_outlet(now=0.0)
    outlet.receive(wire.CREDIT_TAG, 5)
    assert outlet.next_timer is None and outlet.timer(PONG_TIMEOUT * 2) == ()
