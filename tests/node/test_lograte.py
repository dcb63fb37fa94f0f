"""Log lines about a flood: one per key per period, saying how many were left out."""

import logging

from appliance.node.lograte import LogRate


def test_one_line_per_key_per_period_with_the_count_left_out(caplog):
    now = [0.0]
    rate = LogRate(logging.getLogger("flood"), every=10, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="flood"):
        for _ in range(5):
            rate.warning("a", "refused %s", "a")
        rate.warning("b", "refused %s", "b")
        now[0] = 10.0
        rate.warning("a", "refused %s", "a")
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert lines == ["refused a", "refused b", "refused a (4 more like it since the last such line)"]
