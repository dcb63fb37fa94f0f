"""A 3 s stall of a healthy path (packet loss and TCP retransmission, Wi-Fi roaming: far below
the 10-15 s after which the link itself would count as dead) plus one new client is enough to
close the secure channel (ProbeAck not back within PROBE_TIMEOUT = 2 s) and with it reset
every encrypted portal stream riding on it, although nothing is wrong with the far end."""

import gevent
from gevent import socket
from gevent.server import StreamServer

from tests.node.conftest import connect, recv_exactly


def test_a_short_stall_and_a_new_client_do_not_reset_established_encrypted_streams(make_node, echo_server):
    stalled = {"on": False}

    def pipe(src, dst, pausable):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                while pausable and stalled["on"]:
                    gevent.sleep(0.05)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            dst.close()

    def proxy_conn(client, _addr):  # the network between a and b
        upstream = socket.create_connection(("127.0.0.1", int(make_node.listener("b").rsplit(":", 1)[1])))
        gevent.spawn(pipe, upstream, client, False)
        pipe(client, upstream, True)  # a -> b may stall
    proxy = StreamServer(("127.0.0.1", 0), proxy_conn)
    proxy.start()
    try:
        a, b = make_node("a"), make_node("b")
        b.outlet_create(echo_server)
        inlet = a.inlet_create("127.0.0.1:0", f"/ip4/127.0.0.1/tcp/{proxy.address[1]}/secure/api/service/outlet")
        first = connect(inlet["bind_address"])
        first.sendall(b"hello")
        assert recv_exactly(first, 5) == b"hello"
        gevent.sleep(2.5)  # an idle session (ssh, a pooled DB connection)
        stalled["on"] = True  # the path stalls for 3 s
        second = connect(inlet["bind_address"])  # meanwhile a new client arrives
        second.sendall(b"new")
        gevent.sleep(3)
        stalled["on"] = False
        assert recv_exactly(second, 3) == b"new"
        first.settimeout(5)
        first.sendall(b"still here")
        assert recv_exactly(first, 10) == b"still here", (
            f"the established stream was reset: {dict(a.node.counters)}")
    finally:
        proxy.stop(timeout=0)
