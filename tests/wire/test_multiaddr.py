import pytest

from appliance.wire import multiaddr
from appliance.wire.errors import MultiaddrError
from appliance.wire.multiaddr import Local, Node, Project, Secure, Tcp


def test_seed_routes():
    assert multiaddr.parse("/service/0123/service/forward_to_n3/service/uppercase") == [
        Local("0123"), Local("forward_to_n3"), Local("uppercase")]
    assert multiaddr.parse("/node/n2") == [Node("n2")]
    assert multiaddr.parse("/worker/abc") == [Local("abc")]


def test_transport_segments():
    assert multiaddr.parse("/ip4/127.0.0.1/tcp/4000/service/echo") == [Tcp("127.0.0.1", 4000), Local("echo")]
    assert multiaddr.parse("/dnsaddr/localhost/tcp/7000") == [Tcp("localhost", 7000)]
    assert multiaddr.parse("/ip6/::1/tcp/7000") == [Tcp("::1", 7000)]
    assert multiaddr.parse("/project/default/secure/api") == [Project("default"), Secure("api")]


def test_text_round_trip():
    text = "/ip4/127.0.0.1/tcp/4000/service/echo"
    assert multiaddr.to_text(multiaddr.parse(text)) == text


@pytest.mark.parametrize("bad", [
    "", "service/echo", "/", "/service", "/bogus/x", "/ip4/300.1.1.1/tcp/1", "/ip4/127.0.0.1/udp/1",
    "/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/70000", "/ip4/127.0.0.1", "/service/a" * 65,
    "/dnsaddr/a b/tcp/1", '/dnsaddr/"x"/tcp/1', "/dnsaddr/-x/tcp/1", "/dnsaddr/" + "a" * 254 + "/tcp/1",
])
def test_bad_routes_are_typed_errors(bad):
    with pytest.raises(MultiaddrError):
        multiaddr.parse(bad)


def test_hostport():
    assert multiaddr.parse_hostport("127.0.0.1:7000") == Tcp("127.0.0.1", 7000)
    assert multiaddr.parse_hostport("[::1]:7000") == Tcp("::1", 7000)
    assert multiaddr.parse_hostport("127.0.0.1:0", allow_zero=True).port == 0
    for bad in ("7000", "127.0.0.1:", "127.0.0.1:0", ":80", "host:x"):
        with pytest.raises(MultiaddrError):
            multiaddr.parse_hostport(bad)


def test_a_reachable_address_is_an_ip_or_a_dns_name_and_no_wildcard():
    assert multiaddr.check_reachable(Tcp("relay-2.example.com", 4000)) == Tcp("relay-2.example.com", 4000)
    assert multiaddr.check_reachable(Tcp("0::1", 4000)) == Tcp("::1", 4000)  # one way to write it
    for bad, why in ((Tcp("0.0.0.0", 1), "wildcard"), (Tcp("::", 1), "wildcard"), (Tcp("a/b", 1), "bad dnsaddr"),
                     (Tcp("a b", 1), "bad dnsaddr"), (Tcp("fe80::zz", 1), "bad dnsaddr"), (Tcp("0::0", 1), "wildcard"),
                     (Tcp("::ffff:0.0.0.0", 1), "wildcard"), (Tcp("0", 1), "wildcard")):
        with pytest.raises(MultiaddrError, match=why):
            multiaddr.check_reachable(bad)


def test_a_worker_address_as_tcp_connection_list_prints_it():
    """`0#<hex>` is a local worker's address: pasted after /service/ it names that worker."""
    worker = "3f8543ad63622903badb53c413946742"
    assert multiaddr.parse(f"/service/0#{worker}/service/echo") == [Local(worker), Local("echo")]
    with pytest.raises(MultiaddrError, match="not a local address .* /ip4/HOST/tcp/PORT"):
        multiaddr.parse("/service/1#127.0.0.1:4000/service/echo")
