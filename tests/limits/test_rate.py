"""Token buckets and the handshake budget, on a fake clock."""

from collections import Counter

from appliance.limits.budgets import Limits
from appliance.limits.rate import KeyedBuckets, TokenBucket
from appliance.node.handshakes import HandshakeBudget


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


def test_handshake_budget_refuses_over_rate_and_in_progress():
    clock, counters = Clock(), Counter()
    budget = HandshakeBudget(Limits(handshakes_in_progress=16, handshakes_per_second=6,
                                    handshakes_per_second_per_source=3), counters, clock)
    assert [budget.refusal("s1") for _ in range(4)][:3] == [None] * 3
    assert budget.refusal("s1") == "busy: over 3 handshakes a second from one source; try again later"
    assert [budget.refusal("s2") for _ in range(3)] == [None] * 3
    assert budget.refusal("s3") == "busy: over 6 handshakes a second (handshakes_per_second); try again later"
    assert counters["handshakes_refused"] == 3
    for _ in range(2):  # in progress: one source may hold an eighth of the slots
        budget.started("s4")
    clock.now += 10
    assert budget.refusal("s4") == "busy: 2 handshakes in progress from one source; try again later"
    budget.finished("s4")
    assert budget.refusal("s4") is None
