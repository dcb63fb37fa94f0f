"""The backoff of a persistent connection (0.25 s doubling to 2 s) starts again from 0.25 s
after every connect that succeeds, even if the socket dies at once: a peer that accepts and
closes (a relay restarting or overloaded, something else listening on that port) is dialled
4-8 times a second forever, with a log line and a round of watcher notifications each time."""


from appliance.node.clock import VirtualClock


def test_a_peer_that_accepts_then_closes_is_dialled_with_backoff(make_node, tcp_service):
    accepted = []
    service = tcp_service(lambda sock, _a: (accepted.append(1), sock.close()))
    clock = VirtualClock()
    a = make_node("a", clock=clock)
    a.control.tcp_connection_create(service)
    for _ in range(100):
        clock.advance(0.05)
    # with 0.25 s doubling to 2 s (each wait 50-100 %), in 5 s: the first dial, then at most
    # 0.125+0.25+0.5+1+1+1+1 < 5 s -> 7 more, and at least 0.25+0.5+1+2 < 5 s -> 4 more
    assert 5 <= len(accepted) <= 8, f"{len(accepted)} dials in 5 s"
