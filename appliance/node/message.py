"""The message a node routes internally: a transport message plus what the node knows of it."""

from __future__ import annotations

from typing import NamedTuple, Optional

from appliance.wire.address import Route
from appliance.wire.buffer import Buffer


class LocalMessage(NamedTuple):
    onward: Route
    return_route: Route
    payload: Buffer  # bytes, or a view into what was received
    # identifier of the authenticated peer when the message came out of a secure channel
    peer: Optional[str] = None
    # this node's own answer to a peer's request: dropped, not queued, for a peer that does
    # not read its answers (node/transport/queues.py)
    answer: bool = False
    # the return route the message had before a secure channel of this node wrapped it:
    # whom the ciphertext is on behalf of (node/transport/queues.py)
    origin_route: Optional[Route] = None
    # a UDP portal's datagram: dropped, not queued, on a link that is behind (node/transport/tcp.py)
    datagram: bool = False

    def step(self, prepend_return=None) -> "LocalMessage":
        """The same message with the first onward hop removed (and optionally a return hop added)."""
        ret = self.return_route if prepend_return is None else (prepend_return,) + self.return_route
        return self._replace(onward=self.onward[1:], return_route=ret)
