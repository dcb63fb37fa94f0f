"""A retired channel that closes for another reason (here: its TCP link closed) ends its
retire loop at once and is not counted as `channels_dead` (was: counted and logged as "its
far end is gone" up to 10 s later, the greenlet holding the closed channel meanwhile)."""

import gevent

from appliance.node import channel as channel_mod
from tests.node.conftest import connect, recv_exactly


def test_a_retired_channel_closed_by_its_link_is_not_counted_dead(make_node, echo_server, monkeypatch,
                                                                  stalling_proxy):
    monkeypatch.setattr(channel_mod, "RETIRED_PROBE_TIMEOUT", 2.0)
    a, b = make_node("a"), make_node("b")
    proxy = stalling_proxy(make_node.listener("b"))  # a -> b may stall
    b.outlet_create(echo_server)
    inlet = a.inlet_create("127.0.0.1:0", f"/ip4/127.0.0.1/tcp/{proxy.port}/secure/api/service/outlet")
    sock = connect(inlet["bind_address"])
    sock.sendall(b"hello")
    assert recv_exactly(sock, 5) == b"hello"
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
