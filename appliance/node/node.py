"""The node: a registry of workers and the router that moves messages between them.

Routing is Ockam's: the first address of the onward route names the worker that gets the
message next. A message whose next hop is unknown, or whose routes grew past what any node
may decode (each hop adds itself to the return route), is dropped and counted, never fatal:
a peer's message must never make a link that carries others' traffic fail.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

import gevent
from gevent.event import AsyncResult

from appliance.node.clock import Clock
from appliance.node.errors import AddressInUse, RequestTimeout
from appliance.node.message import LocalMessage
from appliance.node.shortcuts import Shortcuts
from appliance.node.worker import Worker
from appliance.wire import probe
from appliance.wire.address import MAX_ROUTE_HOPS, Address, route_text
from appliance.wire.buffer import Buffer

log = logging.getLogger(__name__)


class Node:
    def __init__(self, name: str, clock: Clock | None = None):
        """`clock`: the time every part of the node reads and waits on (node/clock.py)."""
        self.name = name
        self.clock = clock or Clock()
        self.workers: dict[Address, Worker] = {}
        self.counters: Counter = Counter()
        self.shortcuts = Shortcuts()  # what messages through its links do, while its workers stay the same

    # --- registry -------------------------------------------------------------------------
    def register(self, worker: Worker) -> None:
        if worker.address in self.workers:
            raise AddressInUse(f"address {worker.address} is already in use on node {self.name}")
        self.workers[worker.address] = worker
        self.shortcuts.clear()

    def unregister(self, address: Address) -> None:
        if self.workers.pop(address, None) is not None:
            self.shortcuts.clear()

    def stop(self) -> None:
        for worker in list(self.workers.values()):
            try:
                worker.stop()
            except Exception:  # noqa: BLE001 - shutting down: one bad worker must not stop the rest
                log.exception("error stopping worker %s", worker.address)
        self.workers.clear()
        self.shortcuts.clear()

    # --- routing ----------------------------------------------------------------------------
    def route(self, msg: LocalMessage) -> None:
        if not msg.onward:
            self.counters["dropped_empty_route"] += 1
            return
        if len(msg.return_route) > MAX_ROUTE_HOPS or len(msg.onward) > MAX_ROUTE_HOPS:
            self.counters["dropped_route_too_long"] += 1
            log.debug("dropped a message whose routes are longer than %d hops", MAX_ROUTE_HOPS)
            return
        address = msg.onward[0]
        worker = self.workers.get(address)
        if worker is None:
            # also every non-LOCAL hop (`1#host:port`): a peer must never make us dial out
            self.counters["dropped_unknown_address"] += 1
            log.debug("dropped message for unknown address %s (onward %s)", address, route_text(msg.onward))
            if msg.return_route:
                answer = probe.unreachable_answer(msg.payload)
                if answer is not None:  # a route probe: tell its sender the route ends here
                    self.answer(msg, answer)
            return
        try:
            worker.handle(msg)
        except Exception:  # noqa: BLE001 - a failing worker must never take the node down
            self.counters["worker_errors"] += 1
            log.exception("worker %s failed to handle a message", address)

    def send(self, onward: Sequence[Address], payload: Buffer, return_route: Sequence[Address] = ()) -> None:
        self.route(LocalMessage(tuple(onward), tuple(return_route), payload))

    def answer(self, request: LocalMessage, payload: Buffer, sender: Address | None = None) -> None:
        """Answer a peer's request along its return route (from `sender`, if it wants
        replies): dropped rather than queued when the link back is far behind."""
        self.route(LocalMessage(request.return_route, (sender,) if sender else (), payload, None, True))

    def request(self, onward: Sequence[Address], payload: Buffer, timeout: float | None,
                cancel=None) -> LocalMessage | None:
        """Send from a one-shot address and wait for the first message sent back to it; None
        if the `cancel` event is set first."""
        waiter = _ReplyWaiter()
        self.register(waiter)
        try:
            self.send(onward, payload, (waiter.address,))
            gevent.wait([waiter.result] + ([cancel] if cancel is not None else []), timeout=timeout, count=1)
            if waiter.result.ready():
                return waiter.result.get()
            if cancel is not None and cancel.is_set():
                return None
            raise RequestTimeout(f"no reply from {route_text(tuple(onward))} within {timeout:g} s")
        finally:
            self.unregister(waiter.address)


class _ReplyWaiter(Worker):
    def __init__(self):
        self.address = Address.random_local()
        self.result = AsyncResult()

    def handle(self, msg: LocalMessage) -> None:
        if not self.result.ready():
            self.result.set(msg)
