"""The message a node routes internally: a transport message plus what the node knows of it."""

from __future__ import annotations

from typing import Optional

from appliance.wire.address import Route
from appliance.wire.buffer import Buffer


class LocalMessage:
    """A plain class, not a NamedTuple: every message through a node makes one or more, and
    in the compiled build (packaging/compiled.py) a native class is built and read in C,
    where a NamedTuple is built by an interpreted `__new__`."""

    __slots__ = ("onward", "return_route", "payload", "peer", "answer", "origin_route", "datagram")

    def __init__(self, onward: Route, return_route: Route, payload: Buffer, peer: Optional[str] = None,
                 answer: bool = False, origin_route: Optional[Route] = None, datagram: bool = False):
        self.onward = onward
        self.return_route = return_route
        self.payload = payload  # bytes, or a view into what was received
        # identifier of the authenticated peer when the message came out of a secure channel
        self.peer = peer
        # this node's own answer to a peer's request: dropped, not queued, for a peer that does
        # not read its answers (node/transport/queues.py)
        self.answer = answer
        # the return route the message had before a secure channel of this node wrapped it:
        # whom the ciphertext is on behalf of (node/transport/queues.py)
        self.origin_route = origin_route
        # a UDP portal's datagram: dropped, not queued, on a link that is behind (node/transport/tcp.py)
        self.datagram = datagram

    def __repr__(self) -> str:
        return (f"LocalMessage(onward={self.onward!r}, return_route={self.return_route!r}, "
                f"payload={bytes(self.payload[:64])!r}, peer={self.peer!r})")

    def step(self, prepend_return: Optional[object] = None) -> "LocalMessage":
        """The same message with the first onward hop removed (and optionally a return hop added)."""
        ret = self.return_route if prepend_return is None else (prepend_return,) + self.return_route
        return LocalMessage(self.onward[1:], ret, self.payload, self.peer, self.answer, self.origin_route,
                            self.datagram)
