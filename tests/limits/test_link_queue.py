"""node/transport/queues.py: the bookkeeping of what answers and other links hold of a link's queue."""

from collections import Counter

from appliance.limits.budgets import Limits
from appliance.node.transport.queues import ANSWERS, LinkQueue, QueueBudget


def budget(**limits) -> QueueBudget:
    return QueueBudget(Limits(**limits), Counter())


def test_what_the_kernel_took_is_released_and_the_total_follows():
    shared = budget()
    first, second = LinkQueue(shared), LinkQueue(shared)
    first.hold(100, "a", 100)
    first.hold(300, "a", 200)
    second.hold(50, "b", 50)
    assert shared.total == 350 and first.held == {"a": 300}
    first.release(100)
    assert shared.total == 250 and first.held == {"a": 200}
    first.release(299)  # the second frame is not all out yet
    assert first.held == {"a": 200}
    first.release(300)
    assert first.held == {} and shared.total == 50
    second.clear()
    assert shared.total == 0 and second.held == {}


def test_answers_count_only_the_answers_queued_on_the_link():
    shared = budget(reply_backlog=1000)
    queue = LinkQueue(shared)
    queue.hold(10_000, "a link's traffic", 5000)  # a busy link: its own load does not stop answers
    assert queue.admit_answer(600)
    queue.hold(10_600, ANSWERS, 600)
    assert queue.admit_answer(400) and not queue.admit_answer(401)
    assert shared.counters["dropped_replies_unread"] == 1


def test_a_share_and_the_nodes_total():
    shared = budget(link_share=1000, queued_bytes=1500)
    first, second = LinkQueue(shared), LinkQueue(shared)
    first.hold(900, "a", 900)
    assert first.over_share("a", 101) and not first.over_share("a", 100) and not first.over_share("b", 500)
    second.hold(500, "b", 500)
    assert second.over_share("c", 101)  # the node's total: 1400 held of 1500
