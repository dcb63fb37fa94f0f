"""A 3 s stall of a healthy path (packet loss and TCP retransmission, Wi-Fi roaming: far below
the 10-15 s after which the link itself would count as dead) plus one new client is enough to
close the secure channel (ProbeAck not back within PROBE_TIMEOUT = 2 s) and with it reset
every encrypted portal stream riding on it, although nothing is wrong with the far end."""

import gevent

from tests.node.conftest import connect, recv_exactly


def test_a_short_stall_and_a_new_client_do_not_reset_established_encrypted_streams(stallable_secure_portal):
    a, proxy, inlet, first = stallable_secure_portal
    gevent.sleep(2.5)  # an idle session (ssh, a pooled DB connection)
    proxy.stalled = True  # the path stalls for 3 s
    second = connect(inlet)  # meanwhile a new client arrives
    second.sendall(b"new")
    gevent.sleep(3)
    proxy.stalled = False
    assert recv_exactly(second, 3) == b"new"
    first.settimeout(5)
    first.sendall(b"still here")
    assert recv_exactly(first, 10) == b"still here", (
        f"the established stream was reset: {dict(a.node.counters)}")
