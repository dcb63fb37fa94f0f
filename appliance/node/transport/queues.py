"""What peers can make a node queue on its links outside flow control, and its bounds.

Portal streams are bounded by their credit windows. Two things are not: the answers of the
node's own services (echo, probes, refusals, relay replies) to a peer that never reads them,
and what a relay forwards from one link onto another whose peer reads slower than the
sender sends. So:
- an answer is dropped when `reply_backlog` of answers are already queued on its link
  (`dropped_replies_unread`); what else the link carries does not count;
- once a link has a queue of ACCOUNT_FROM bytes (below, nothing is counted: a busy link's
  batch of one loop turn),
- a forwarded message is held against its source: the identity it proved, for a message out
  of a secure channel (on every link it uses), else the link it arrived over (or, behind a
  link this node dialled, that link and the sender behind it): a source may hold
  `link_share` of another link's queue, and all sources and answers together `queued_bytes`
  of all links. Beyond that one link is closed (`links_cut_off`): the source's, when it
  carries nothing and this node did not dial it (it is pushing); else this one, when it
  carries nothing (it does not read what it asked for); a link that carries a registration,
  channels or streams is never closed for another's traffic: the message is dropped then
  (`dropped_over_share`).
A message is held until the writer's `sent` passes its end; each liveness tick releases
what links that caught up no longer hold (pure bookkeeping: no I/O here).
"""

from __future__ import annotations

from collections import deque

ACCOUNT_FROM = 256 * 1024
ANSWERS = "answers"  # the key of this node's own answers
DATAGRAM_BACKLOG = 64 * 1024  # a link this far behind carries no UDP portal datagrams: they may be lost, the rest may not


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

    def admit_answer(self, size: int) -> bool:
        """Answers already queued on this link (not whatever else it carries) decide."""
        limits = self.budget.limits
        if self.held.get(ANSWERS, 0) + size > limits.reply_backlog or self.budget.total + size > limits.queued_bytes:
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
