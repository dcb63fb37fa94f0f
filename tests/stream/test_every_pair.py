"""Every (state, event) pair of the portal stream state machine, and random runs of events
(hypothesis, as h2 tests its state machines): whatever a peer, a socket or time does, the
stream either moves as TRANSITIONS says or closes with a StreamError; a closed stream stays
closed and does nothing more; credit never goes negative; time only ever pings or gives up."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.stream.credit import INITIAL_WINDOW
from appliance.stream.errors import StreamError
from appliance.stream.state import PING_RETRY, PONG_TIMEOUT, TRANSITIONS, Act, Event, PortalStreamState, State
from appliance.wire import portal as wire

W = 1000
PEER, STRANGER = "I" + "a" * 40, "I" + "b" * 40
ROUTE, OTHER = ("outlet stream",), ("another outlet stream",)
PRE_OPEN = {State.AWAITING_PONG, State.AWAITING_ACK}
ACTS_OF = {  # what each kind of input may ask of the runtime
    "receive": {Act.WRITE, Act.WAKE, Act.SEND, Act.SHUT_WRITE, Act.CLOSE, Act.ABORT, Act.REFUSED},
    "pong": {Act.BIND, Act.SEND, Act.TURN_AWAY, Act.UNAUTHORIZED},
    "timer": {Act.PING, Act.DOUBT, Act.TIMED_OUT, Act.SEND, Act.ABORT},
    "local": {Act.SEND, Act.CLOSE, Act.ABORT},
}


def stream_in(state: State) -> PortalStreamState:
    """A stream in `state` as it is when it got there: windows open, the peer's route known."""
    stream = PortalStreamState(state, W, now=0.0, authorized=frozenset({PEER}))
    if state not in PRE_OPEN:
        stream.send.grant(INITIAL_WINDOW)
        stream.receive_window.open()
        stream.route = ROUTE
    if state is State.AWAITING_ACK:
        stream.receive_window.open(INITIAL_WINDOW)
    return stream


INPUTS = {  # name -> (kind, what it does to a stream)
    "Pong": ("receive", lambda s: s.receive(wire.PONG_TAG, b"")),
    "Payload": ("receive", lambda s: s.receive(wire.PAYLOAD_TAG, b"x" * 10)),
    "Credit": ("receive", lambda s: s.receive(wire.CREDIT_TAG, 10)),
    "End": ("receive", lambda s: s.receive(wire.END_TAG, b"")),
    "Disconnect": ("receive", lambda s: s.receive(wire.DISCONNECT_TAG, b"")),
    "Ping": ("receive", lambda s: s.receive(wire.PING_TAG, b"")),
    "an unknown tag": ("receive", lambda s: s.receive(0x7F, b"")),
    "Pong from the peer": ("pong", lambda s: s.pong(ROUTE, PEER)),
    "Pong from elsewhere": ("pong", lambda s: s.pong(OTHER, PEER)),
    "Pong from a stranger": ("pong", lambda s: s.pong(ROUTE, STRANGER)),
    "the first tick": ("timer", lambda s: s.timer(0.0)),
    "a tick past the timeout": ("timer", lambda s: s.timer(PONG_TIMEOUT)),
    "local EOF": ("local", lambda s: s.local_eof()),
    "abort": ("local", lambda s: s.abort()),
    "link lost": ("local", lambda s: s.link_lost()),
    "the socket took bytes": ("local", lambda s: s.took(W)),
    "a credit flush": ("local", lambda s: s.flush_credit()),
}
RECEIVED_EVENT = {"Pong": Event.PONG, "Payload": Event.PAYLOAD, "Credit": Event.CREDIT, "End": Event.END}


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("name", list(INPUTS))
def test_every_state_and_event(state, name):
    kind, event = INPUTS[name]
    stream = stream_in(state)
    try:
        actions = event(stream)
    except StreamError:
        assert state is not State.CLOSED and stream.state is State.CLOSED and stream.aborted
        assert (state, RECEIVED_EVENT.get(name)) not in TRANSITIONS
        return
    assert {act for act, _ in actions} <= ACTS_OF[kind], actions
    if state is State.CLOSED:
        assert actions == () and stream.state is State.CLOSED
    elif kind == "receive" and name in RECEIVED_EVENT:
        assert stream.state is TRANSITIONS[state, RECEIVED_EVENT[name]]
    if stream.state is State.CLOSED:
        assert stream.sendable == 0 and stream.next_timer is None


@st.composite
def runs(draw):
    """A stream (an inlet's or an outlet's) and a run of events at non-decreasing times."""
    inlet = draw(st.booleans())
    events = draw(st.lists(st.one_of(
        st.tuples(st.just("receive"), st.sampled_from(
            [wire.PONG_TAG, wire.PAYLOAD_TAG, wire.CREDIT_TAG, wire.END_TAG, wire.DISCONNECT_TAG, wire.PING_TAG, 0x42]),
            st.integers(0, 3 * W)),
        st.tuples(st.just("pong"), st.sampled_from([ROUTE, OTHER]), st.sampled_from([PEER, STRANGER, None])),
        st.tuples(st.just("time"), st.floats(0.0, 4 * PING_RETRY), st.booleans()),
        st.tuples(st.just("local"), st.sampled_from(["eof", "abort", "link lost", "took", "flush", "sent"]),
                  st.integers(0, 3 * W)),
    ), max_size=40))
    return inlet, events


@settings(max_examples=400, deadline=None)
@given(runs())
def test_random_runs_of_events_keep_the_stream_sound(run):
    inlet, events = run
    now = 0.0
    if inlet:
        stream = PortalStreamState.for_inlet(W, now=now, authorized=frozenset({PEER}))
    else:
        stream, _first = PortalStreamState.for_outlet(W, now=now)
    opened_at, pinged_at, sending = None, None, False  # when pinged() was last called; a Ping not sent yet
    for kind, a, b in events:
        was = stream.state
        try:
            if kind == "receive":
                value = b"x" * b if a == wire.PAYLOAD_TAG else b + 1 if a == wire.CREDIT_TAG else b""
                actions = stream.receive(a, value)
            elif kind == "pong":
                actions = stream.pong(a, b)
            elif kind == "time":
                now += a
                actions = stream.timer(now)
                if b and sending:  # the runtime sent it (it may take a while: then b is False for now)
                    stream.pinged(now)
                    pinged_at, sending = now, False
            elif a == "eof":
                actions = stream.local_eof()
            elif a == "abort":
                actions = stream.abort()
            elif a == "link lost":
                actions = stream.link_lost()
            elif a == "took":
                actions = stream.took(b)
            elif a == "flush":
                actions = stream.flush_credit()
            else:
                stream.sent(min(b, stream.sendable))
                actions = ()
        except StreamError:
            assert stream.state is State.CLOSED and stream.aborted
            continue
        if was is State.CLOSED:
            assert actions == () and stream.state is State.CLOSED
        acts = [act for act, _ in actions]
        if Act.PING in acts:  # never while one is being sent; the first at once, then PING_RETRY after the last
            assert was is State.AWAITING_PONG and now < PONG_TIMEOUT and not sending
            assert acts == ([Act.PING] if pinged_at is None else [Act.DOUBT, Act.PING])
            assert pinged_at is None or now >= pinged_at + PING_RETRY
            sending = True
        if Act.TIMED_OUT in acts:
            assert was in PRE_OPEN and now >= PONG_TIMEOUT and stream.state is State.CLOSED
        if was in PRE_OPEN and stream.state not in PRE_OPEN and stream.state is not State.CLOSED:
            opened_at = now
        assert stream.send.available >= 0 and stream.receive_window.allowed >= 0
        assert (stream.next_timer is None) == (stream.state not in PRE_OPEN)
    if opened_at is not None:
        assert opened_at < PONG_TIMEOUT  # nothing opens after its timeout
