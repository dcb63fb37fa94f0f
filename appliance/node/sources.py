"""Who sent a message, as far as this node can tell without believing the sender.

A return route starts with the hops the node itself and its neighbours wrote: the link the
message came over (a TCP connection, or the secure channel it came out of). Behind a link
this node dialled out on or a channel it made (to a relay it registered at, a project
relay), the next hop is the relay's own connection to the sender, which the relay wrote: so
through a relay each of the relay's connections is a source of its own. Every hop after that the sender chose, and proves
nothing. Budgets per source (handshakes, outlet connections) count by this key.
"""

from __future__ import annotations


def message_source(node, return_route: tuple) -> tuple:
    if not return_route:
        return ()
    if len(return_route) > 1 and getattr(node.workers.get(return_route[0]), "outgoing", False):
        return return_route[:2]
    return return_route[:1]
