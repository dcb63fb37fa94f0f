"""A repeated Ping (the first one answered slowly) makes the outlet open a second stream. The
inlet is bound to the first outlet stream that answered: what any other stream or the outlet
service sends it (Pong, Credit, a late Disconnect) is turned away, never mixed into its own."""

import gevent
import pytest
from gevent.server import StreamServer

from appliance.node.portals import portal
from appliance.node.errors import RouteError
from appliance.stream.credit import DEFAULT_WINDOW
from tests.helpers import wait_until
from tests.node.conftest import connect, recv_exactly


@pytest.fixture
def second_connect(monkeypatch):
    """The outlet's first connect to its target takes 1.3 s (> PING_RETRY: the inlet pings
    again); later ones run `second(real connect, target, timeout)`. Yields the call list."""
    real, calls, behaviour = portal.connect_tcp, [], {}

    def connect_tcp(target, timeout=portal.TARGET_CONNECT_TIMEOUT):
        calls.append(target)
        first = len(calls) == 1
        gevent.sleep(1.3)
        return real(target, timeout=timeout) if first else behaviour["second"](real, target, timeout)
    monkeypatch.setattr(portal, "connect_tcp", connect_tcp)

    def set_second(second):
        behaviour["second"] = second
        return calls
    return set_second


def slow_but_fine(real, target, timeout):
    return real(target, timeout=timeout)


@pytest.fixture
def idle_service():
    server = StreamServer(("127.0.0.1", 0), lambda sock, _a: gevent.sleep(20))  # reads nothing
    server.start()
    yield f"127.0.0.1:{server.address[1]}"
    server.stop(timeout=0)


def portal_with_a_second_answer(make_node, target):
    a, b = make_node("a"), make_node("b")
    b.control.outlet_create(target)
    client = connect(a.control.inlet_create("127.0.0.1:0", "/node/b/service/outlet")["bind_address"])
    [stream] = wait_until(lambda: list(a.portals.inlets[next(iter(a.portals.inlets))].streams), what="the inlet stream")
    turned_away = ("portal_pongs_turned_away", "portal_messages_from_wrong_route")
    wait_until(lambda: any(a.node.counters[c] for c in turned_away), timeout=10,
               what="the second answer to be turned away")
    return a, b, client, stream


@pytest.mark.pure_only("portal.connect_tcp")
def test_a_second_outlet_stream_is_let_go_and_grants_nothing(make_node, second_connect, idle_service):
    calls = second_connect(slow_but_fine)
    a, b, _client, stream = portal_with_a_second_answer(make_node, idle_service)
    assert len(calls) == 2 and a.node.counters["portal_pongs_turned_away"] == 1
    assert stream.state.send.available == DEFAULT_WINDOW  # what its own outlet stream granted
    wait_until(lambda: len(b.portals.outlets["outlet"].streams) == 1, what="the second outlet stream to go")


@pytest.mark.pure_only("portal.connect_tcp")
def test_an_upload_stays_within_the_window_of_its_own_outlet_stream(make_node, second_connect, idle_service):
    second_connect(slow_but_fine)
    _a, b, client, stream = portal_with_a_second_answer(make_node, idle_service)
    uploader = gevent.spawn(client.sendall, b"u" * (24 << 20))  # more than kernel buffers + windows
    wait_until(lambda: stream.state.sendable == 0, timeout=15, what="the upload to use up its credit")
    uploader.kill()
    assert b.node.counters["portal_protocol_errors"] == 0 and not stream.closed


@pytest.mark.pure_only("portal.connect_tcp")
def test_a_late_disconnect_for_a_repeated_ping_leaves_the_established_stream(make_node, echo_server,
                                                                              second_connect):
    def times_out(real, target, timeout):  # the target is overloaded: the second connect fails
        raise RouteError("cannot connect: timed out")
    second_connect(times_out)
    _a, _b, client, _stream = portal_with_a_second_answer(make_node, echo_server)
    client.settimeout(5)
    client.sendall(b"still here")
    assert recv_exactly(client, 10) == b"still here"
