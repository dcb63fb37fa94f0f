"""Who sent a message, as far as this node can tell without believing the sender.

A return route starts with the hops the node itself and its neighbours wrote: the link the
message came over (a TCP connection, or the secure channel it came out of). Behind a link
this node dialled out on or a channel it made (to a relay it registered at, a project
relay), the next hop is the relay's own connection to the sender, which the relay wrote: so
through a relay each of the relay's connections is a source of its own. Every hop after that the sender chose, and proves
nothing. Budgets per source (handshakes, outlet connections) count by this key.
"""

from __future__ import annotations


def arrival_link(node, return_route: tuple):
    """The TCP link a message arrived over: its return route's first hop, or for a message
    out of a secure channel, the link that channel rides on; None for this node's own."""
    worker = node.workers.get(return_route[0]) if return_route else None
    inner = getattr(worker, "carried_by", None)
    if inner is not None:
        worker = node.workers.get(inner)
    return worker if getattr(worker, "tcp_link", False) else None


def message_source(node, return_route: tuple) -> tuple:
    if not return_route:
        return ()
    if len(return_route) > 1 and getattr(node.workers.get(return_route[0]), "outgoing", False):
        return return_route[:2]
    return return_route[:1]
