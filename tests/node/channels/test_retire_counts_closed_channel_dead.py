"""A retired channel that closes for another reason (here: its TCP link closed) ends its
retire loop at once and is not counted as `channels_dead` (was: counted and logged as "its
far end is gone" up to 10 s later, the greenlet holding the closed channel meanwhile)."""

import gevent

from appliance.node.channels.channel import PROBE_QUIET, PROBE_TIMEOUT, RETIRED_PROBE_TIMEOUT
from appliance.node.clock import VirtualClock
from tests.node.conftest import secure_portal_through_a_stalling_proxy


def test_a_retired_channel_closed_by_its_link_is_not_counted_dead(make_node, echo_server, stalling_proxy):
    clock = VirtualClock()
    a, proxy, _inlet, _client = secure_portal_through_a_stalling_proxy(make_node, echo_server, stalling_proxy,
                                                                        clock=clock)
    (end,) = [e for e in a.channels.ends.values() if e.initiator]
    clock.advance(PROBE_QUIET + 0.1)  # quiet for longer than PROBE_QUIET: the next user probes it
    proxy.stalled = True
    checking = gevent.spawn(end.check_alive)
    gevent.sleep(0.01)
    clock.advance(PROBE_TIMEOUT)
    assert checking.get(timeout=1) is False and end.retired  # no ProbeAck within PROBE_TIMEOUT: retired
    clock.advance(0.2)  # _retire now waits for its patient probe
    (conn,) = a.tcp.connections.values()
    conn.close()  # the channel closes with its link
    assert end.closed
    clock.advance(RETIRED_PROBE_TIMEOUT + 0.5)
    assert a.node.counters["channels_retired"] == 1
    assert a.node.counters["channels_dead"] == 0, "a channel closed by its link was counted (and logged) as dead"
