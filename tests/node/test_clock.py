"""The virtual clock the runtime's timeouts are tested on: time moves only when told."""

import gevent
from gevent.event import Event

from appliance.node.clock import VirtualClock


def test_timers_fire_in_order_as_time_moves_and_only_then():
    clock, fired = VirtualClock(now=0.0), []
    clock.later(2.0, lambda: fired.append(("later", clock.now())))
    clock.every(1.5, lambda: fired.append(("every", clock.now())))
    stopped = clock.later(1.0, lambda: fired.append(("stopped", clock.now())))
    stopped.stop()
    clock.advance(1.4)
    assert fired == [] and clock.now() == 1.4
    clock.advance(3.1)
    assert fired == [("every", 1.5), ("later", 2.0), ("every", 3.0), ("every", 4.5)] and clock.now() == 4.5


def test_a_wait_ends_when_its_event_is_set_or_when_virtual_time_runs_out():
    clock, event = VirtualClock(now=0.0), Event()
    timed_out = gevent.spawn(clock.wait, Event(), 5.0)
    answered = gevent.spawn(clock.wait, event, 5.0)
    gevent.sleep(0.01)
    assert not timed_out.ready() and not answered.ready()
    event.set()
    assert answered.get(timeout=1) is True and not timed_out.ready()
    clock.advance(4.9)
    assert not timed_out.ready()
    clock.advance(0.1)
    assert timed_out.get(timeout=1) is False


def test_sleep_and_wall_time_follow_the_virtual_clock():
    clock = VirtualClock(now=10.0, wall=1_000.0)
    sleeper = gevent.spawn(clock.sleep, 60.0)
    gevent.sleep(0)  # it starts sleeping at 10.0
    clock.advance(59.0)
    assert not sleeper.ready()
    clock.advance(1.0)
    sleeper.get(timeout=1)
    assert (clock.now(), clock.wall()) == (70.0, 1_060.0)
