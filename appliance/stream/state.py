"""One portal stream (a client connection between an inlet and an outlet) as a state machine.

Sans I/O, like h11: the runtime tells it what happened (a portal message from the peer, end
or failure of the local socket, bytes the local socket took) and carries out the actions it
returns. Every legal move is in TRANSITIONS; anything else is the peer's error, raised as a
StreamError after the stream has moved to CLOSED (the runtime then aborts it).

    inlet:  AWAITING_PONG --Pong--> OPEN             (Pong grants it the window; it answers with its own: the ack)
            AWAITING_PONG --Disconnect--> CLOSED     (the outlet refused: its client is closed, not reset)
    outlet: AWAITING_ACK --Credit--> OPEN            (Pong went out first)
    OPEN --local EOF--> LOCAL_ENDED --End--> CLOSED  (a half-close each way, in either order)
    OPEN --End--> REMOTE_ENDED --local EOF--> CLOSED
    any --Disconnect, abort, link lost, timeout--> CLOSED

Before it opens, a stream keeps time: the runtime calls `timer(now)` when `next_timer` is due.
An inlet stream pings (Act.PING) at once and every PING_RETRY seconds while no Pong came,
doubting the route before each retry (Act.DOUBT), and gives up after PONG_TIMEOUT; an outlet
stream whose Pong nobody acknowledged within PONG_TIMEOUT is reset (Act.TIMED_OUT first, so
the runtime can say why). An inlet takes the first Pong from an authorized peer (`pong`) and
turns away a second one (an answer to a repeated Ping) with Disconnect.
"""

from __future__ import annotations

import enum
from typing import Final

from appliance.stream.credit import DEFAULT_WINDOW, INITIAL_WINDOW, ReceiveWindow, SendCredit
from appliance.stream.errors import StreamError, UnexpectedMessage
from appliance.wire import portal as wire

PONG_TIMEOUT = 10.0  # an inlet stream waits this long for Pong, an outlet stream for its acknowledgement
PING_RETRY = 1.0  # no Pong yet: doubt the route, resolve it again and send Ping again


class _Enum(enum.Enum):
    """Members hash by identity (they are singletons), in C: Enum's own hash is a Python
    call, and every message of a stream looks states up in TRANSITIONS and SENDING."""

    __hash__ = object.__hash__


class State(_Enum):
    AWAITING_PONG = "awaiting pong"
    AWAITING_ACK = "awaiting ack"
    OPEN = "open"
    LOCAL_ENDED = "local ended"  # we sent End: we only receive
    REMOTE_ENDED = "remote ended"  # the peer sent End: we only send
    CLOSED = "closed"


class Event(_Enum):
    PONG = wire.PONG_TAG
    PAYLOAD = wire.PAYLOAD_TAG
    CREDIT = wire.CREDIT_TAG
    END = wire.END_TAG
    LOCAL_EOF = "local eof"


class Act(_Enum):
    SEND = "send"  # send this portal message to the peer
    WRITE = "write"  # write these bytes to the local socket
    WAKE = "wake"  # credit arrived: the local socket may be read again
    SHUT_WRITE = "shut write"  # once everything is written, half-close the local socket
    CLOSE = "close"  # once everything is written, close the local socket
    ABORT = "abort"  # close the local socket now (a reset)
    PING = "ping"  # resolve the route to the outlet (again) and send Origin and Ping over it, then call pinged()
    DOUBT = "doubt"  # the last Ping went unanswered: check the route's links, prefer another route that is up
    BIND = "bind"  # the peer is at this route from now on (the accepted Pong's return route)
    TURN_AWAY = "turn away"  # send Disconnect to this route: a second outlet stream, for a repeated Ping
    UNAUTHORIZED = "unauthorized"  # a Pong from this peer, which is not authorized: ignored
    REFUSED = "refused"  # the outlet refused the stream (Disconnect before Pong)
    TIMED_OUT = "timed out"  # no Pong (inlet) or no acknowledgement (outlet) within PONG_TIMEOUT


S = State
TRANSITIONS: Final = {
    (S.AWAITING_PONG, Event.PONG): S.OPEN,
    (S.AWAITING_ACK, Event.CREDIT): S.OPEN,
    (S.OPEN, Event.CREDIT): S.OPEN,
    (S.OPEN, Event.PAYLOAD): S.OPEN,
    (S.OPEN, Event.LOCAL_EOF): S.LOCAL_ENDED,
    (S.OPEN, Event.END): S.REMOTE_ENDED,
    (S.LOCAL_ENDED, Event.CREDIT): S.LOCAL_ENDED,
    (S.LOCAL_ENDED, Event.PAYLOAD): S.LOCAL_ENDED,
    (S.LOCAL_ENDED, Event.END): S.CLOSED,
    (S.REMOTE_ENDED, Event.CREDIT): S.REMOTE_ENDED,
    (S.REMOTE_ENDED, Event.LOCAL_EOF): S.CLOSED,
}
EVENTS: Final = {event.value: event for event in Event}  # by portal message tag (and LOCAL_EOF's name)
SENDING: Final = frozenset((S.OPEN, S.REMOTE_ENDED))  # states in which we may send Payload
RECEIVING: Final = frozenset((S.OPEN, S.LOCAL_ENDED))  # states in which the peer may
NOTHING: Final = ()
ABORT_AND_TELL: Final = ((Act.SEND, wire.DISCONNECT), (Act.ABORT, None))


class PortalStreamState:
    """`for_inlet()` when a client connected; `for_outlet()` before the outlet answers Pong."""

    __slots__ = ("state", "send", "receive_window", "aborted", "route", "authorized", "deadline", "ping_at",
                 "pings")

    def __init__(self, state: State, window: int = DEFAULT_WINDOW, now: float = 0.0, authorized=None):
        self.state = state
        self.send = SendCredit()
        self.receive_window = ReceiveWindow(window)
        self.aborted = False  # CLOSED by Disconnect, abort, link loss or timeout (not two Ends)
        self.route: tuple | None = None  # the peer's route, once known (an inlet's: the accepted Pong's return route)
        self.authorized = authorized  # an inlet's: the peers whose Pong it takes (None: any)
        self.deadline = now + PONG_TIMEOUT  # open by then, or give up
        self.ping_at: float | None = now  # when the next Ping is due (None: one is being sent)
        self.pings = 0

    @classmethod
    def for_inlet(cls, window: int = DEFAULT_WINDOW, now: float = 0.0, authorized=None) -> "PortalStreamState":
        """An inlet stream: its first Ping is due at once (`timer(now)`)."""
        return cls(S.AWAITING_PONG, window, now, authorized)

    @classmethod
    def for_outlet(cls, window: int = DEFAULT_WINDOW, now: float = 0.0) -> tuple:
        """The state and what the outlet sends first: Pong, which grants the inlet our window."""
        stream = cls(S.AWAITING_ACK, window, now)
        stream.receive_window.open(INITIAL_WINDOW)
        return stream, ((Act.SEND, wire.PONG),)

    # --- time, before the stream opens --------------------------------------------------------
    @property
    def next_timer(self) -> float | None:
        """When `timer` has something to do next (None: nothing, the stream is open or over)."""
        if self.state is S.AWAITING_PONG:
            return self.deadline if self.ping_at is None else min(self.ping_at, self.deadline)
        if self.state is S.AWAITING_ACK:
            return self.deadline
        return None

    def timer(self, now: float) -> tuple:
        """Time passed: Ping (again), or give up."""
        if self.state not in (S.AWAITING_PONG, S.AWAITING_ACK) or now < (self.next_timer or 0.0):
            return NOTHING
        if now >= self.deadline:
            self._close_aborted()
            return ((Act.TIMED_OUT, None),) + ABORT_AND_TELL
        self.ping_at = None
        self.pings += 1
        return ((Act.PING, None),) if self.pings == 1 else ((Act.DOUBT, None), (Act.PING, None))

    def pinged(self, now: float) -> None:
        """The runtime sent the Ping (or could not resolve the route): the next is due in PING_RETRY."""
        if self.state is S.AWAITING_PONG:
            self.ping_at = now + PING_RETRY

    def pong(self, route: tuple, peer: str | None) -> tuple:
        """A Pong from `peer` over `route`: the first one from an authorized peer opens the
        stream; a later one from elsewhere answers a repeated Ping, and is turned away."""
        if self.state is S.AWAITING_PONG:
            if self.authorized and peer not in self.authorized:
                return ((Act.UNAUTHORIZED, peer),)
            self.route = route
            return ((Act.BIND, route),) + self.receive(wire.PONG_TAG, b"")
        if self.state is S.CLOSED or route == self.route:
            return NOTHING  # in flight when we closed, or the same outlet stream's again
        return ((Act.TURN_AWAY, route),)

    def _close_aborted(self) -> None:
        """CLOSED by Disconnect, abort, link loss, timeout or a peer's error (not two Ends)."""
        self.state, self.aborted = S.CLOSED, True

    @property
    def sendable(self) -> int:
        """How many bytes of the local socket may be read and sent now."""
        return self.send.available if self.state in SENDING else 0

    def _move(self, event: Event) -> None:
        try:
            self.state = TRANSITIONS[self.state, event]
        except KeyError:
            previous = self.state
            self._close_aborted()
            raise UnexpectedMessage(f"{event.name} in state {previous.value}") from None

    # --- from the peer ------------------------------------------------------------------------
    def receive(self, tag: int, value) -> tuple:
        """A decoded portal message (Ping is the outlet service's, not a stream's)."""
        if tag == wire.DISCONNECT_TAG:
            if self.state is S.CLOSED:
                return NOTHING
            refused = self.state is S.AWAITING_PONG
            self._close_aborted()
            if refused:  # its target is down, or we may not use it: the client is closed, not reset
                return ((Act.REFUSED, None), (Act.CLOSE, None))
            return ((Act.ABORT, None),)  # an abort, as a reset: End is how a stream ends well
        if self.state is S.CLOSED:
            return NOTHING  # in flight when we closed
        event = EVENTS.get(tag)
        if event is None or event is Event.LOCAL_EOF:
            self._close_aborted()
            raise UnexpectedMessage(f"portal message {tag} on an open stream")
        was_blocked = self.sendable == 0
        self._move(event)
        try:
            if event is Event.PAYLOAD:
                self.receive_window.receive(len(value))
                return ((Act.WRITE, value),)
            if event is Event.CREDIT:
                self.send.grant(value)
                return ((Act.WAKE, None),) if was_blocked and self.sendable else NOTHING
            if event is Event.PONG:  # it grants us the protocol's first window; ours acks it
                self.send.grant(INITIAL_WINDOW)
                return ((Act.SEND, wire.encode_credit(self.receive_window.open())),)
            # END
            return ((Act.CLOSE, None),) if self.state is S.CLOSED else ((Act.SHUT_WRITE, None),)
        except StreamError:
            self._close_aborted()
            raise

    # --- from the local side ------------------------------------------------------------------
    def sent(self, size: int) -> None:
        """`size` bytes read from the local socket are going to the peer as Payload."""
        self.send.use(size)

    def took(self, size: int) -> tuple:
        """The local socket took `size` bytes the peer sent: maybe grant them back."""
        grant = self.receive_window.took(size)
        if grant and self.state in RECEIVING:
            return ((Act.SEND, wire.encode_credit(grant)),)
        return NOTHING

    def flush_credit(self) -> tuple:
        """Grant back what the local socket took since the last grant, if anything (at each
        liveness tick: a slow stream's peer keeps hearing from us)."""
        if self.state in RECEIVING and self.receive_window.taken:
            return ((Act.SEND, wire.encode_credit(self.receive_window.flush())),)
        return NOTHING

    def local_eof(self) -> tuple:
        """The local socket will send nothing more (it half-closed or closed)."""
        if self.state is S.CLOSED:
            return NOTHING
        self._move(Event.LOCAL_EOF)
        if self.state is S.CLOSED:
            return ((Act.SEND, wire.END), (Act.CLOSE, None))
        return ((Act.SEND, wire.END),)

    def abort(self) -> tuple:
        """The local socket failed, or we give up on the stream: tell the peer, reset ours."""
        if self.state is S.CLOSED:
            return NOTHING
        self._close_aborted()
        return ABORT_AND_TELL

    def link_lost(self) -> tuple:
        """The route to the peer is gone: nothing can reach it, reset ours at once."""
        if self.state is S.CLOSED:
            return NOTHING
        self._close_aborted()
        return ((Act.ABORT, None),)
