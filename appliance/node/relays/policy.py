"""Who may register relays at this node: listed identities, members of the project this
node is the project node of, and, at another relay box of a project, members that proved a
credential of it in the channel they register over (and lose their names when it lapses)."""

from __future__ import annotations

import logging

from appliance.node.project.authority import relay_refusal

log = logging.getLogger(__name__)


def registration_policy(node_name: str, authorized: frozenset | None, authority=None, box=None):
    """`policy(msg, name)`: why `msg`'s sender may not register relay `name`, or None when it
    may; None when anyone may (no rule is set)."""
    policies = []
    if authorized:
        policies.append(lambda msg, name: None if msg.peer in authorized else
                        f"{msg.peer or 'an unauthenticated node'} may not create relays at node {node_name} "
                        "(register over a secure channel as an authorized identity)")
    if authority is not None:
        policies.append(lambda msg, name: authority.relay_policy(msg.peer, name))
    if box is not None:
        policies.append(box.refusal)
    if not policies:
        return None
    return lambda msg, name: next(filter(None, (p(msg, name) for p in policies)), None)


class RelayBox:
    """The rule at one more relay box of `project`: a registration's channel must carry an
    unexpired credential of the project, and the relay ends with it."""

    def __init__(self, project: str, node_name: str, channels, trust):
        self.project, self.node_name, self.channels, self.trust = project, node_name, channels, trust

    def refusal(self, msg, name: str) -> str | None:
        end = self.channels.first_hop(msg.return_route)
        if end is None or end.proved_until(self.project) <= self.channels.node.clock.wall():
            return (f"{msg.peer or 'an unauthenticated node'} presented no unexpired credential of project "
                    f"{self.project} in its secure channel to relay box {self.node_name}")
        return relay_refusal(self.project, msg.peer, self.trust.attributes_of(msg.peer, self.project), name)

    def end_relays_on_lapse(self, forwarding) -> None:
        """A peer's credential of our project lapsed in one of its channels here (removed, or
        the project node is away): its relays here end and its names are free (another
        member may now hold them, as the project allows), and the channel closes, so that
        the peer sees it and registers again once it holds a fresh credential."""
        def lapsed(end, project: str) -> None:
            if project == self.project:
                log.info("project %s: the credential of %s lapsed; its relays here end", project, end.peer)
                forwarding.release(end.peer)
                end.close(notify=True)
        self.channels.on_lapse(lapsed)
