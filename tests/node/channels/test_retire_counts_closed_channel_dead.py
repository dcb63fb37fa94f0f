"""A retired channel that closes for another reason (here: its TCP link closed) ends its
retire loop at once and is not counted as `channels_dead` (was: counted and logged as "its
far end is gone" up to 10 s later, the greenlet holding the closed channel meanwhile)."""

import gevent

from appliance.node.channels import channel as channel_mod


def test_a_retired_channel_closed_by_its_link_is_not_counted_dead(stallable_secure_portal, monkeypatch):
    monkeypatch.setattr(channel_mod, "RETIRED_PROBE_TIMEOUT", 2.0)
    a, proxy, _inlet, _client = stallable_secure_portal
    (end,) = [e for e in a.channels.ends.values() if e.initiator]
    gevent.sleep(2.1)  # quiet for longer than PROBE_QUIET
    proxy.stalled = True
    assert end.check_alive() is False and end.retired  # no ProbeAck within 1.5 s: retired
    gevent.sleep(0.2)  # _retire now waits for its patient probe
    (conn,) = a.tcp.connections.values()
    conn.close()  # the channel closes with its link
    assert end.closed
    gevent.sleep(channel_mod.RETIRED_PROBE_TIMEOUT + 0.5)
    assert a.node.counters["channels_dead"] == 0, "a channel closed by its link was counted (and logged) as dead"
