"""A relay's or an inlet's condition, with an injected clock."""

from appliance.observe.condition import Condition, Health


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_starts_connecting_and_records_each_change():
    clock = Clock()
    condition = Condition(clock)
    assert condition.describe() == {"state": "connecting", "since": 1000.0, "last_error": None, "last_error_at": None}
    clock.now = 1002.5
    assert condition.up() is True and condition.is_up
    assert condition.up() is False  # no news: `since` stays
    clock.now = 1010.0
    assert condition.describe()["since"] == 1002.5


def test_the_last_error_outlives_the_recovery():
    clock = Clock()
    condition = Condition(clock)
    condition.up()
    clock.now = 1005.0
    assert condition.down("connection refused") is True
    clock.now = 1006.0
    assert condition.down("connection refused") is False  # still down: since 1005
    clock.now = 1007.0
    condition.connecting()  # no reason given: the last one is kept
    clock.now = 1008.0
    condition.up()
    assert condition.describe() == {"state": "up", "since": 1008.0, "last_error": "connection refused",
                                    "last_error_at": 1006.0}
    assert condition.health is Health.UP and condition.changes == 4
