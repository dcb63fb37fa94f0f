"""What peers can make a node queue on its links outside flow control, and its bounds.

Portal streams are bounded by their credit windows. Two things are not: the answers of the
node's own services (echo, probes, refusals, relay replies) to a peer that never reads them,
and what a relay forwards from one link onto another whose peer reads slower than the
sender sends. So, once a link has a queue (below ACCOUNT_FROM bytes nothing is counted: a
busy link's batch of one loop turn):
- an answer to a link more than `reply_backlog` behind is dropped (`dropped_replies_unread`);
- a forwarded message is held against its source: the identity it proved, for a message out
  of a secure channel (on every link it uses), else the link it arrived over (or, behind a
  link this node dialled, that link and the sender behind it): a source may hold
  `link_share` of another link's queue, and all sources and answers together `queued_bytes`
  of all links. Beyond that the source's link is cut off when it is the source's own (an
  incoming connection: it is the one flooding), and its message dropped otherwise
  (`dropped_over_share`): never the link that carries everyone's traffic.
A message is held until the writer's `sent` passes its end (pure bookkeeping: no I/O here).
"""

from __future__ import annotations

from collections import deque

ACCOUNT_FROM = 256 * 1024
ANSWERS = "answers"  # the key of this node's own answers


class QueueBudget:
    """The node's total, and the counters; one per transport."""

    def __init__(self, limits, counters):
        self.limits = limits
        self.counters = counters
        self.total = 0


class LinkQueue:
    """One link's held bytes by source key: (end offset in the writer's stream, key, size)."""

    __slots__ = ("budget", "_entries", "held")

    def __init__(self, budget: QueueBudget):
        self.budget = budget
        self._entries: deque = deque()
        self.held: dict = {}

    def release(self, sent: int) -> None:
        """Forget what the kernel took: entries that end at or before `sent` bytes."""
        entries, held = self._entries, self.held
        while entries and entries[0][0] <= sent:
            _, key, size = entries.popleft()
            left = held[key] - size
            if left:
                held[key] = left
            else:
                del held[key]
            self.budget.total -= size

    def clear(self) -> None:
        """The socket is gone: what it held goes with it."""
        self.budget.total -= sum(self.held.values())
        self._entries.clear()
        self.held.clear()

    def admit_answer(self, backlog: int, size: int) -> bool:
        limits = self.budget.limits
        if backlog > limits.reply_backlog or self.budget.total + size > limits.queued_bytes:
            self.budget.counters["dropped_replies_unread"] += 1
            return False
        return True

    def over_share(self, key, size: int) -> bool:
        """Would holding `size` more for `key` pass its share, or the node's total?"""
        limits = self.budget.limits
        return self.held.get(key, 0) + size > limits.link_share or self.budget.total + size > limits.queued_bytes

    def hold(self, end: int, key, size: int) -> None:
        self._entries.append((end, key, size))
        self.held[key] = self.held.get(key, 0) + size
        self.budget.total += size
