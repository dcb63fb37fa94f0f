"""The budgets a node enforces on its peers, with their defaults (TOML `[limits]`).

Everything a peer can make a node hold (memory, sockets, workers, CPU) has one. Hitting a
budget drops or refuses that one thing, counts it and logs it; it never fails a link that
carries others' traffic. The defaults suit a public relay with thousands of edges; tests and
small boxes set their own.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Limits:
    frame_deadline: float = 10.0  # seconds a started frame may go without a byte (see node/transport/budget.py)
    incomplete_frame_bytes: int = 64 << 20  # partial frames, all connections together
    idle_timeout: float = 30.0  # an incoming connection that routed no message is closed after this
    connections_per_listener: int = 4096
    connections_per_source: int = 256  # per remote IP address
    relays_per_connection: int = 64  # per link a registration arrives over
    relays_per_node: int = 10000  # registered and reserved names together
    registrations_per_second_per_source: float = 50.0  # beyond, registrations are dropped unanswered
    handshakes_in_progress: int = 256  # responder handshakes not yet finished
    handshakes_per_second: float = 100.0  # Inits answered, all sources together
    handshakes_per_second_per_source: float = 20.0  # per link an Init arrives over
    outlet_connections_per_route: int = 16384  # connections one inlet node (or channel peer) may have at an outlet
    reply_backlog: int = 1 << 20  # a link this far behind gets no more answers of this node's services
    link_share: int = 16 << 20  # what one source may have queued on another link (16 portal windows)
    queued_bytes: int = 64 << 20  # answers and forwarded messages queued on all links together
    link_idle_timeout: float = 300.0  # an incoming link that carries nothing, never used a relay and routed nothing is closed after this
    udp_flows_per_portal: int = 1024  # client flows one UDP inlet or outlet holds
    udp_flow_idle_timeout: float = 60.0  # a UDP flow with no datagram either way ends after this


SECONDS = {"frame_deadline", "idle_timeout", "link_idle_timeout", "udp_flow_idle_timeout"}
RATES = {"handshakes_per_second", "handshakes_per_second_per_source", "registrations_per_second_per_source"}


def check(key: str, value) -> None:
    """ValueError when `value` is not a sensible setting for `key`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("expected a number")
    if key in SECONDS:
        if not 0.5 <= value <= 3600:
            raise ValueError("must be a number of seconds from 0.5 to 3600")
    elif key in RATES:
        if not 0 < value <= 1_000_000:
            raise ValueError("must be a positive rate per second")
    elif not isinstance(value, int) or value < 1:
        raise ValueError("must be a positive whole number")


KEYS = tuple(f.name for f in fields(Limits))
