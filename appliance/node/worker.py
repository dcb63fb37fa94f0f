"""Workers: anything with an address that a node can deliver a message to."""

from __future__ import annotations

from mypy_extensions import mypyc_attr

from appliance.node.message import LocalMessage
from appliance.wire.address import Address, Route


@mypyc_attr(allow_interpreted_subclasses=True)
class Worker:
    """Base class. `handle` runs in the delivering greenlet: it must not block for long,
    except to apply backpressure (a full socket writer).

    Set `address` on the instance: in the compiled build (packaging/compiled.py) it is a slot
    of the native class, which a class attribute of a subclass does not fill."""

    address: Address

    def handle(self, msg: LocalMessage) -> None:
        raise NotImplementedError

    def readdress(self, onward: Route) -> Route | None:
        """The onward route this worker passes a message on with, when that is all it does to
        it (same return route, payload and peer): a relay's name. None for a worker that
        does more. The node then skips it for the rest of a stream (node/shortcuts.py): the
        first message of each pair of routes from a link still comes through `handle`, so
        what `handle` does besides (a relay marks the link `relayed`) must be done once."""
        return None

    def stop(self) -> None:
        """Called when the node unregisters the worker or shuts down."""
