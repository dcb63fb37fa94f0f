"""The shortcut table (node/shortcuts.py) against a registry of stand-in workers: what it
learns of a pair of routes, byte for byte, and when it must say "the long way"."""

from types import SimpleNamespace

from appliance.node.shortcuts import MAX_HOPS, MAX_READDRESSES, Shortcuts
from appliance.node.worker import Worker
from appliance.wire.address import MAX_ROUTE_HOPS, Address
from appliance.wire.transport import MAX_CACHED_HEAD, decode_body, encode_frame, routes_head

A, B = Address.local("link-a"), Address.local("link-b")
NAME, ECHO, ME = Address.local("forward_to_x"), Address.local("echo"), Address.local("me")


class Link(Worker):
    tcp_link = True

    def __init__(self, address):
        self.address = address


class Renamer(Worker):
    """Re-addresses as a relay's name does: its route in front of the rest."""

    def __init__(self, address, forward_route):
        self.address = address
        self.forward_route = forward_route

    def readdress(self, onward):
        return self.forward_route + onward[1:]


class Service(Worker):
    def __init__(self, address):
        self.address = address


def registry(*workers):
    return SimpleNamespace(workers={w.address: w for w in workers})


def body_of(onward, return_route, payload=b"p"):
    return memoryview(encode_frame(onward, return_route, payload))[4:]


def learnt(node, onward, return_route=(ME,), link="arrival"):
    """What the table says of the next message with these routes from `link`, having learnt
    from the first."""
    table = Shortcuts()
    body = body_of(onward, return_route)
    decoded_onward, decoded_return, _, routes_length = decode_body(body)
    table.learn(node, link, body, routes_length + 1, decoded_onward, (A,) + decoded_return)
    return table.get(link, body_of(onward, return_route, b"another payload"), routes_length + 1)


def test_a_relay_name_is_passed_by_to_its_link_with_the_head_the_long_way_writes():
    link_b = Link(B)
    known = learnt(registry(link_b, Renamer(NAME, (B, Address.local("remote")))), (NAME, ECHO))
    assert known.link is link_b
    assert known.head == routes_head((Address.local("remote"), ECHO), (A, ME))
    assert known.head == b"\x01" + b"\x02\x00\x06remote\x00\x04echo" + b"\x02\x00\x06link-a\x00\x02me"
    assert (known.onward, known.return_route) == ((NAME, ECHO), (A, ME))


def test_a_link_in_first_place_is_passed_by_at_once():
    link_b = Link(B)
    known = learnt(registry(link_b), (B, ECHO))
    assert known.link is link_b and known.head == routes_head((ECHO,), (A, ME))


def test_this_nodes_own_workers_and_unknown_addresses_take_the_long_way_with_routes_decoded():
    for node in (registry(Service(ECHO)), registry()):
        known = learnt(node, (ECHO,))
        assert (known.link, known.head) == (None, b"")
        assert (known.onward, known.return_route) == ((ECHO,), (A, ME))


def test_routes_the_router_would_drop_take_the_long_way():
    """A relay name whose forward route makes the onward route longer than any node may
    route: the router drops it (dropped_route_too_long), so the table says "the long way"."""
    long_forward = (B,) + (ME,) * (MAX_ROUTE_HOPS - 1)
    assert learnt(registry(Link(B), Renamer(NAME, long_forward)), (NAME,)).link is not None  # 64 hops: routed
    assert learnt(registry(Link(B), Renamer(NAME, long_forward)), (NAME, ECHO)).link is None  # 65


def test_routes_of_many_hops_are_not_kept():
    """MAX_HOPS counts both routes, the arrival link's hop and `me` in the return route here."""
    assert learnt(registry(Link(B)), (B,) + (ECHO,) * (MAX_HOPS - 3)) is not None
    assert learnt(registry(Link(B)), (B,) + (ECHO,) * (MAX_HOPS - 2)) is None


def test_re_addressing_is_followed_a_bounded_number_of_times():
    def chain(length):
        names = [Address.local(f"n{i}") for i in range(length)]
        workers = [Renamer(names[i], (names[i + 1],) if i + 1 < length else (B,)) for i in range(length)]
        return learnt(registry(Link(B), *workers), (names[0], ECHO)).link

    assert chain(MAX_READDRESSES) is not None
    assert chain(MAX_READDRESSES + 1) is None
    looping = Renamer(NAME, (NAME,))
    assert learnt(registry(looping), (NAME, ECHO)).link is None


def test_entries_are_per_arrival_link_and_per_byte_of_the_routes():
    node = registry(Link(B))
    table = Shortcuts()
    body = body_of((B, ECHO), (ME,))
    table.learn(node, "a", body, len(body) - 2, (B, ECHO), (A, ME))
    assert table.get("a", body, len(body) - 2) is not None
    assert table.get("c", body, len(body) - 2) is None  # another link's message has another return route
    other_version = bytes([2]) + bytes(body[1:])
    assert table.get("a", other_version, len(body) - 2) is None
    table.clear()
    assert table.get("a", body, len(body) - 2) is None


def test_routes_of_unusual_size_are_not_kept():
    node = registry(Link(B))
    big = (Address.local("x" * 600), Address.local("y" * 600))
    body = body_of((B,) + big, (ME,))
    table = Shortcuts()
    routes_end = len(body) - 2
    assert routes_end > MAX_CACHED_HEAD
    table.learn(node, "a", body, routes_end, (B,) + big, (A, ME))
    assert table.get("a", body, routes_end) is None
