"""Does an inlet's outlet answer? A route probe (wire/probe.py) sent to the outlet itself.

The outlet echoes a probe as `echo` does; a node on the way that has no worker for the next
hop (a relay name nobody registered, an outlet name that does not exist) answers
`unreachable`. So one small message tells "the outlet is there" from "the route ends before
it", with the reason, before any client waits on it.

The inlet's condition (observe/condition.py) follows the answers:
- up: the probe came back, or a stream over the route is established (RouteWatch probes the
  routes of idle streams). Checked again every CHECK_EVERY seconds. A probe that is not
  answered while up leaves it up (on a slow link the answer may wait behind a window of
  data; a hop that vanished is found by link liveness, after which probes are answered
  `unreachable`), but the inlet resolves the route again next time and checks the secure
  channel it starts with, whose far end may have restarted: then the channel is retired and
  the next check, over a new one, says what it finds.
- connecting: not checked yet, or its first link was lost; a check runs at once.
  A probe not answered within ANSWER_TIMEOUT, or a handshake on the way that timed out, leaves
  it connecting for the inlet's Pong timeout: a slow path is no broken one, and clients
  still wait for their Pong. Unanswered for longer, it is down.
- down: resolving failed (no connection to a hop, a handshake refused), or the route ends
  before the outlet: at once for a route that never worked (a wrong name), after the inlet's
  Pong timeout of failing for one that did (a relay restarting, an edge registering again: a
  client arriving meanwhile waits for its Pong, as long as it would have anyway). The
  inlet refuses clients at once while down.
Not up, it checks again after RETRY_FIRST seconds, doubling up to RETRY_MAX (so a relay back
after a restart is found within 2 s), or up to UNANSWERED_RETRY_MAX while nothing answers.
"""

from __future__ import annotations

import logging
import os

import gevent
from gevent.event import AsyncResult, Event

from appliance.node.errors import RequestTimeout
from appliance.node.transport.links import watch_link
from appliance.node.message import LocalMessage
from appliance.node.worker import Worker
from appliance.observe.condition import Condition, Health
from appliance.wire import probe
from appliance.wire.address import Address

log = logging.getLogger(__name__)

CHECK_EVERY = 10.0
RESOLVE_WITHIN = 10.0  # what the inlet's handshakes may take (they start short and grow on timeouts)
ANSWER_TIMEOUT = 2.0
RETRY_FIRST = 0.25
RETRY_MAX = 2.0
UNANSWERED_RETRY_MAX = 5.0
DOUBT = 5.0  # two link liveness ticks: streams' "heard" flags are all fresh by then
UP, BROKEN, UNANSWERED = "up", "broken", "unanswered"  # what one check found
ENDS_EARLY = "the route ends before the outlet (no such relay or outlet on the way, or the outlet refuses us)"


class RouteCheck(Worker):
    """Keeps `condition` of the route `resolve(timeout)` returns. `heard()` says whether
    streams prove the route works now (then no probe is needed); `route_failed(route)` hears
    of a probe left unanswered. A route that worked is down after failing for `down_after`
    seconds: the inlet's Pong timeout, so no client is refused sooner than it would have failed."""

    def __init__(self, node, name: str, resolve, down_after: float, heard=lambda: False,
                 route_failed=lambda route: None):
        self.node = node
        self.name = name  # for the log: "inlet <alias> (<bind>, route <text>)"
        self.address = Address.random_local()
        self.condition = Condition()
        self.rtt: float | None = None  # seconds, the last answered probe's round trip
        self._resolve = resolve
        self._down_after = down_after
        self._heard = heard
        self._route_failed = route_failed
        self._stopped = False
        self._doubt_until = 0.0
        self._answers: dict = {}  # probe token -> AsyncResult of whether the outlet is reachable
        self._kick = Event()
        self._unwatch = None
        self._checked = Event()  # set after each check: create waits for the first
        self._worked = False  # the route answered once: a failure may be a rebuild in progress
        self._failing_since: float | None = None  # monotonic time of the first of the current failures
        node.register(self)
        self._greenlet = gevent.spawn(self._run)

    # --- what others tell it -------------------------------------------------------------------
    def kick(self, reason: str | None = None) -> None:
        """Check now (a client's Ping went unanswered, the route's first link was lost). With a
        reason the route is in doubt: connecting, and for DOUBT seconds only a probe's answer,
        not traffic that streams had before, makes it up again."""
        if reason and self.condition.health is Health.UP:
            self.condition.connecting(reason)
        if reason:
            self._doubt_until = self.node.clock.now() + DOUBT
        self._kick.set()

    def wait_checked(self, timeout: float) -> bool:
        """Wait up to `timeout` for the first check's outcome; True if it is known."""
        return self.node.clock.wait(self._checked, timeout)

    def handle(self, msg: LocalMessage) -> None:
        answer = probe.decode_answer(msg.payload)
        if answer is None:
            return
        waiter = self._answers.pop(answer[1], None)
        if waiter is not None:
            waiter.set(answer[0])

    # --- the loop --------------------------------------------------------------------------------
    def _run(self) -> None:
        """Checks, and waits between them: CHECK_EVERY while up; RETRY_FIRST doubling up to
        RETRY_MAX while broken, up to UNANSWERED_RETRY_MAX while merely unanswered (an outlet
        of an older version ignores probes: a client's stream then proves the route)."""
        retry = RETRY_FIRST
        while not self._stopped:
            self._kick.clear()
            if self._heard() and self.node.clock.now() >= self._doubt_until:  # streams over it hear their outlet
                self._answered()
                outcome = UP
            else:
                outcome = self._check()
            self._checked.set()
            if outcome is UP:
                retry = RETRY_FIRST
                self.node.clock.wait(self._kick, CHECK_EVERY)
            else:
                self.node.clock.wait(self._kick, retry)
                retry = min(retry * 2, RETRY_MAX if outcome is BROKEN else UNANSWERED_RETRY_MAX)

    def _check(self):
        """One look: UP, BROKEN (resolving failed, or the route ends before the outlet) or
        UNANSWERED (no proof either way)."""
        try:
            route = self._resolve(RESOLVE_WITHIN)
        except RequestTimeout as exc:  # a handshake on a slow path: no proof of a broken route
            self._failed(str(exc), proof=False)
            return UNANSWERED
        except Exception as exc:  # noqa: BLE001 - whatever broke is the reason it is down
            self._failed(str(exc) or type(exc).__name__)
            return BROKEN
        self._watch_first_hop(route)
        token = os.urandom(probe.TOKEN_SIZE)
        waiter = self._answers[token] = AsyncResult()
        sent = self.node.clock.now()
        self.node.route(LocalMessage(tuple(route), (self.address,), probe.encode_probe(token)))
        if not self.node.clock.wait(waiter, ANSWER_TIMEOUT):
            self._answers.pop(token, None)
            # slow, or its far end is gone behind a secure channel that looks alive here: let
            # the inlet resolve again next time and check the links it runs over, as an
            # unanswered Ping does (a dead channel is retired, and the next check says why)
            self._route_failed(route)
            if self.condition.is_up:
                return UP
            self._failed(f"no answer from the outlet within {ANSWER_TIMEOUT:g} s", proof=False)
            return UNANSWERED
        if not waiter.get():
            self._failed(ENDS_EARLY)
            return BROKEN
        self.rtt = self.node.clock.now() - sent
        self._answered()
        return UP

    def _answered(self) -> None:
        self._worked, self._failing_since = True, None
        if self.condition.up():
            log.info("%s: the outlet answers", self.name)

    def _failed(self, reason: str, proof: bool = True) -> None:
        """Connecting, or down: at once on `proof` of a broken route that never worked, else
        after failing for `down_after` (unanswered that long, it is as good as broken)."""
        now = self.node.clock.now()
        if self._failing_since is None:
            self._failing_since = now
        if (self._worked or not proof) and now - self._failing_since < self._down_after:
            self.condition.connecting(reason)
            return
        news = self.condition.health is not Health.DOWN or self.condition.last_error != reason
        self.condition.down(reason)
        if news:
            log.warning("%s: %s; clients are refused until it answers (checking again every %g s or less)",
                        self.name, reason, RETRY_MAX)

    def _watch_first_hop(self, route) -> None:
        if self._unwatch is not None:
            self._unwatch()
        if self._stopped:
            return
        self._unwatch = watch_link(self.node, route[0], lambda link: self.kick(
            f"its first link ({getattr(link, 'peer', None) or link.address}) was lost")) if route else None

    def stop(self) -> None:
        self._stopped = True
        self._greenlet.kill(block=False)
        if self._unwatch is not None:
            self._unwatch()
        self.node.unregister(self.address)
