"""Workers: anything with an address that a node can deliver a message to."""

from __future__ import annotations

from appliance.node.message import LocalMessage
from appliance.wire.address import Address


class Worker:
    """Base class. `handle` runs in the delivering greenlet: it must not block for long,
    except to apply backpressure (a full socket writer)."""

    address: Address

    def handle(self, msg: LocalMessage) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Called when the node unregisters the worker or shuts down."""
