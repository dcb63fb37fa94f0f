"""An outlet stream is bound only to its first hop. Behind a relay that is the edge's link to
the relay, which outlives the inlet's node: when the client's node vanishes (crash, lost
network), its streams' outlet ends and their connections to the service are kept forever
(the service is idle: nothing ever fails), although "no orphans" is the aim of b951277."""

import socket as stdsocket
import struct


from tests.helpers import wait_until
from tests.node.conftest import connect, recv_exactly


def test_outlet_streams_of_a_vanished_inlet_node_behind_a_relay_are_closed(make_node, echo_server):
    relay, edge, client = make_node("relay"), make_node("edge", listen=False), make_node("client", listen=False)
    edge.control.relay_create("edge", "/node/relay")
    edge.control.outlet_create(echo_server)
    inlet = client.control.inlet_create("127.0.0.1:0", "/node/relay/service/forward_to_edge/service/outlet")["bind_address"]
    sock = connect(inlet)
    sock.sendall(b"hello")
    assert recv_exactly(sock, 5) == b"hello"
    outlet = edge.portals.outlets["outlet"]
    assert len(outlet.streams) == 1
    # the client's node vanishes: its link to the relay is cut, nothing is said on it
    for conn in list(client.tcp.connections.values()):
        conn.sock.sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.sock.sock.close()
    wait_until(lambda: not [c for c in relay.tcp.connections.values()
                            if c.peer.startswith("127.0.0.1") and c not in edge_links(relay, edge)],
               timeout=5, what="the relay to see the client's link go")
    wait_until(lambda: not outlet.streams, timeout=20,
               what="the outlet to let go of the stream whose inlet node is gone")


def edge_links(relay, edge):
    ports = {c.sock.sock.getsockname()[1] for c in edge.tcp.connections.values() if c.connected}
    return [c for c in relay.tcp.connections.values() if int(c.peer.rsplit(":", 1)[1]) in ports]
