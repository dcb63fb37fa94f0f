"""Token buckets and the handshake budget, on a fake clock."""

from collections import Counter

from appliance.limits.budgets import Limits
from appliance.limits.rate import KeyedBuckets, TokenBucket
from appliance.node.channels.handshakes import HandshakeBudget


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_bucket_allows_a_burst_then_its_rate():
    clock = Clock()
    bucket = TokenBucket(4, clock)
    assert [bucket.take() for _ in range(5)] == [True] * 4 + [False]
    clock.now += 0.5
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    clock.now += 100  # refills only up to the burst
    assert sum(bucket.take() for _ in range(10)) == 4


def test_keyed_buckets_are_independent_and_bounded():
    clock = Clock()
    buckets = KeyedBuckets(1, clock, max_keys=3)
    assert [buckets.take("a"), buckets.take("a"), buckets.take("b")] == [True, False, True]
    for key in "cdef":
        buckets.take(key)
    assert len(buckets._buckets) <= 3


class End:
    def __init__(self, budget):
        self.budget = budget
        self.failed = None

    def fail(self, exc):
        self.failed = exc
        self.budget.finished(self)


def test_handshake_budget_refuses_over_rate_and_a_source_over_its_share():
    clock, counters = Clock(), Counter()
    budget = HandshakeBudget(Limits(handshakes_in_progress=16, handshakes_per_second=6,
                                    handshakes_per_second_per_source=3), counters, clock)
    assert [budget.refusal("s1") for _ in range(3)] == [None] * 3
    assert budget.refusal("s1") == "busy: over 3 handshakes a second from one source; try again later"
    assert [budget.refusal("s2") for _ in range(3)] == [None] * 3
    assert budget.refusal("s3") == "busy: over 6 handshakes a second (handshakes_per_second); try again later"
    assert counters["handshakes_refused"] == 2
    ends = [End(budget), End(budget)]
    for end in ends:  # in progress: one source may hold an eighth of the slots
        budget.started("s4", end)
    clock.now += 10
    assert budget.refusal("s4") == "busy: 2 handshakes in progress from one source; try again later"
    budget.finished(ends[0])
    assert budget.refusal("s4") is None


def test_when_all_slots_are_taken_the_oldest_half_made_handshake_gives_way():
    counters = Counter()
    budget = HandshakeBudget(Limits(handshakes_in_progress=8), counters, Clock())
    ends = [End(budget) for _ in range(9)]
    for i, end in enumerate(ends):
        budget.started(f"s{i}", end)
    assert [type(e.failed).__name__ for e in ends] == ["HandshakeEvicted"] + ["NoneType"] * 8
    assert budget.total == 8 and counters["handshakes_evicted"] == 1 and "s0" not in budget.in_progress
