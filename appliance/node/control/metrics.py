"""What `/metrics` says about a node (observe/exposition.py writes it out).

Everything is read from the node when a scrape asks, from counts the data path keeps anyway
(a portal's Tally is a few integer additions per chunk): a node nobody scrapes pays nothing.
Per-name series exist for what an operator configured (inlets, outlets, relays it
registers), never for what strangers bring (the relays others register at a public relay are
one count), so a busy relay cannot blow up a Prometheus server.
"""

from __future__ import annotations

import gc
import os
import time

from greenlet import greenlet

from appliance.observe.condition import Health
from appliance.observe.exposition import Family

# node counters shown as one family with a label, each with the label's value; the rest of
# the counters are `ockam_events_total{event=...}`
DROPPED = {
    "dropped_unknown_address": "unknown_address", "dropped_route_too_long": "route_too_long",
    "dropped_empty_route": "empty_route", "dropped_too_large": "too_large",
    "dropped_closed_connection": "closed_connection", "dropped_bad_messages": "bad_message",
    "bad_portal_messages": "bad_portal_message", "channel_messages_rejected": "bad_channel_message",
    "portal_messages_from_wrong_route": "portal_wrong_route",
}
BUDGETS = {  # counter -> the [limits] key it enforces
    "connections_refused": "connections_per_listener_or_source", "incomplete_frames_closed": "incomplete_frame_bytes",
    "frames_timed_out": "frame_deadline", "idle_connections_closed": "idle_timeout",
    "handshakes_refused": "handshakes_per_second", "handshakes_evicted": "handshakes_in_progress",
    "registrations_dropped": "registrations_per_second_per_source", "relay_names_forgotten": "relays_per_node",
    "outlet_connections_refused": "outlet_connections_per_route",
}
HANDSHAKES = {"handshakes_ok": "ok", "handshakes_failed": "failed", "handshakes_timed_out": "timed_out",
              "handshakes_refused": "refused", "handshakes_evicted": "evicted"}
GROUPED = {**DROPPED, **BUDGETS, **HANDSHAKES}


def families(runtime) -> list:
    return [*_portals(runtime), *_udp_portals(runtime), *_relays(runtime), *_links(runtime),
            *_counters(runtime.node.counters),
            *_process(runtime)]


def _portals(runtime) -> list:
    received = Family("ockam_portal_received_bytes_total", "counter",
                      "Bytes read from the portal's sockets (an inlet's clients, an outlet's target).")
    sent = Family("ockam_portal_sent_bytes_total", "counter",
                  "Bytes written to the portal's sockets (an inlet's clients, an outlet's target).")
    open_ = Family("ockam_portal_connections_open", "gauge", "Connections open through the portal.")
    opened = Family("ockam_portal_connections_total", "counter",
                    "Connections accepted by an inlet from its clients, or made by an outlet to its target.")
    failed = Family("ockam_portal_connect_failures_total", "counter",
                    "Connections that failed: refused while the route is down, no answer from the outlet, "
                    "refused by the outlet, the outlet's target not reachable.")
    stalls = Family("ockam_portal_flow_control_stalls_total", "counter",
                    "Times a portal stream stopped reading its socket to wait for its peer's credit.")
    state = Family("ockam_inlet_state", "gauge", "1 for the current state of each of the inlet's routes: up, connecting, down.")
    since = Family("ockam_inlet_state_since_seconds", "gauge", "Unix time the inlet's route entered its current state.")
    rtt = Family("ockam_inlet_route_rtt_seconds", "gauge", "Round trip of the last answered probe to the outlet, by route.")
    for kind, portals in (("inlet", runtime.portals.inlets), ("outlet", runtime.portals.outlets)):
        for name, portal in portals.items():
            tally, labels = portal.tally, {"kind": kind, "name": name}
            received.add(tally.received, **labels)
            sent.add(tally.sent, **labels)
            open_.add(len(portal.streams), **labels)
            opened.add(tally.opened, **labels)
            failed.add(tally.failed, **labels)
            stalls.add(tally.stalls, **labels)
    for name, inlet in runtime.portals.inlets.items():  # each of its routes
        for route in inlet.routes:
            _state(state, route.check.condition, name=name, route=route.text)
            since.add(route.check.condition.since, name=name, route=route.text)
            if route.check.rtt is not None:
                rtt.add(route.check.rtt, name=name, route=route.text)
    return [received, sent, open_, opened, failed, stalls, state, since, rtt]


def _udp_portals(runtime) -> list:
    datagrams = Family("ockam_udp_portal_datagrams_total", "counter",
                       "Datagrams a UDP portal carried: toward its service (from an inlet's clients, to an "
                       "outlet's target) or back.")
    octets = Family("ockam_udp_portal_bytes_total", "counter", "Bytes of those datagrams, the same way.")
    dropped = Family("ockam_udp_portal_dropped_total", "counter",
                     "Datagrams a UDP portal dropped, by reason (no_route, refused, socket_full, too_many_flows, "
                     "unauthorized, target_unreachable).")
    flows = Family("ockam_udp_portal_flows_open", "gauge", "Client flows a UDP portal holds.")
    for kind, portals in (("inlet", runtime.portals.udp_inlets), ("outlet", runtime.portals.udp_outlets)):
        for name, portal in portals.items():
            tally, labels = portal.tally, {"kind": kind, "name": name}
            datagrams.add(tally.to_service, **labels, direction="to_service")
            datagrams.add(tally.from_service, **labels, direction="from_service")
            octets.add(tally.bytes_to_service, **labels, direction="to_service")
            octets.add(tally.bytes_from_service, **labels, direction="from_service")
            for reason, count in sorted(tally.dropped.items()):
                dropped.add(count, **labels, reason=reason)
            flows.add(len(portal.flows.by_key), **labels)
    return [datagrams, octets, dropped, flows]


def _state(family: Family, condition, **labels) -> None:
    for health in Health:
        family.add(int(condition.health is health), **labels, state=health.value)


def _relays(runtime) -> list:
    state = Family("ockam_relay_state", "gauge", "1 for the relay registration's current state: up, connecting, down.")
    since = Family("ockam_relay_state_since_seconds", "gauge", "Unix time the relay entered its current state.")
    registrations = Family("ockam_relay_registrations_total", "counter", "Successful registrations of the relay.")
    reconnects = Family("ockam_relay_reconnects_total", "counter",
                        "Registrations lost (link closed, pings unanswered); each is made again in the background.")
    rtt = Family("ockam_relay_ping_rtt_seconds", "gauge", "Round trip of the last keep-alive ping to the relay node.")
    served = Family("ockam_relays_served", "gauge",
                    "Relays others registered at this node: up, or down (the registrant's link lost, its name kept).")
    for (name, at), client in runtime.relays.clients.items():  # forward_to_<name>, as `relay list`; one per relay node
        _state(state, client.condition, name=name, at=at)
        since.add(client.condition.since, name=name, at=at)
        registrations.add(client.registrations, name=name, at=at)
        reconnects.add(client.reconnects, name=name, at=at)
        if client.ping_rtt is not None:
            rtt.add(client.ping_rtt, name=name, at=at)
    up = sum(relay.alive for relay in runtime.forwarding.relays.values())
    if runtime.forwarding.offered:
        served.add(up, state="up").add(len(runtime.forwarding.relays) - up, state="down")
    return [state, since, registrations, reconnects, rtt, served]


def _links(runtime) -> list:
    links = Family("ockam_links_open", "gauge", "Node-to-node TCP links open, by who dialled.")
    connected = [c for c in runtime.tcp.connections.values() if c.connected]
    outgoing = sum(c.outgoing for c in connected)
    links.add(outgoing, direction="outgoing").add(len(connected) - outgoing, direction="incoming")
    channels = Family("ockam_secure_channels_open", "gauge", "Secure channels established.")
    channels.add(len(runtime.channels.ends))
    return [links, channels]


def _counters(counters) -> list:
    dropped = Family("ockam_messages_dropped_total", "counter", "Messages dropped, by reason.")
    budgets = Family("ockam_budget_hits_total", "counter",
                     "Things refused or closed because a [limits] budget was reached, by budget.")
    handshakes = Family("ockam_secure_channel_handshakes_total", "counter", "Secure channel handshakes, by outcome.")
    for table, family, label in ((DROPPED, dropped, "reason"), (BUDGETS, budgets, "budget"),
                                 (HANDSHAKES, handshakes, "result")):
        for counter, value in table.items():
            family.add(counters.get(counter, 0), **{label: value})
    events = Family("ockam_events_total", "counter", "Other things the node counts (see the node's log for each).")
    for counter, value in sorted(counters.items()):
        if counter not in GROUPED:
            events.add(value, event=counter)
    return [dropped, budgets, handshakes, events]


def _process(runtime) -> list:
    out = [Family("process_start_time_seconds", "gauge", "Unix time the node started.").add(runtime.started),
           Family("process_cpu_seconds_total", "counter", "CPU time used by the node, user and system.")
           .add(round(sum(os.times()[:2]), 3)),
           Family("ockam_greenlets", "gauge", "Greenlets alive (none waits on a portal connection or a link); "
                  f"counted at most every {GREENLET_COUNT_EVERY:g} s, as counting walks the heap.")
           .add(_greenlets())]
    try:  # Linux; elsewhere these are left out
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        out.append(Family("process_resident_memory_bytes", "gauge", "Resident memory.").add(rss))
        out.append(Family("process_open_fds", "gauge", "Open file descriptors.").add(len(os.listdir("/proc/self/fd"))))
    except (OSError, ValueError, AttributeError):
        pass
    return out


class Sampled:
    """A value too costly to compute at every scrape: computed again at most every `every` s."""

    def __init__(self, compute, every: float, clock=time.monotonic):
        self._compute, self._every, self._clock = compute, every, clock
        self._at, self._value = None, None

    def __call__(self):
        now = self._clock()
        if self._at is None or now - self._at >= self._every:
            self._at, self._value = now, self._compute()
        return self._value


GREENLET_COUNT_EVERY = 60.0  # counting takes ~0.1 s per million heap objects, in the hub
_greenlets = Sampled(lambda: sum(1 for o in gc.get_objects() if isinstance(o, greenlet) and not o.dead),
                     GREENLET_COUNT_EVERY)


def readiness(runtime) -> tuple:
    """(ready, what is not, what is degraded): ready when each relay name is registered at one
    of its relay nodes at least and each inlet has a route whose outlet answers. A relay node
    or a route that is not up while another one is makes it degraded, not unready (that is
    what failover is for)."""
    relays: dict = {}
    for (name, at), client in runtime.relays.clients.items():
        relays.setdefault(name, []).append({"relay": name, "at": at, **client.condition.describe()})
    inlets = [[{"inlet": alias, "route": route.text, **route.check.condition.describe()} for route in inlet.routes]
              for alias, inlet in runtime.portals.inlets.items()]
    waiting, degraded = [], []
    for group in [*relays.values(), *inlets]:
        down = [item for item in group if item["state"] != "up"]
        (waiting if len(down) == len(group) else degraded).extend(down)
    return not waiting, waiting, degraded
