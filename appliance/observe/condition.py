"""The condition of one relay registration or one inlet's route: up, connecting or down,
since when, and the last thing that went wrong (kept after recovery: an operator asks
"what happened?" once it works again)."""

from __future__ import annotations

import enum
import time


class Health(enum.Enum):
    UP = "up"  # registered / the route answers
    CONNECTING = "connecting"  # not known yet, or lost and being re-made
    DOWN = "down"  # tried and failed; trying again in the background


class Condition:
    def __init__(self, clock=time.time):
        self._clock = clock
        self.health = Health.CONNECTING
        self.since = clock()
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.changes = 0  # times the health changed: a dashboard sees flapping

    def up(self) -> bool:
        """True when this is news (it was not up)."""
        return self._become(Health.UP)

    def connecting(self, reason: str | None = None) -> bool:
        self._note(reason)
        return self._become(Health.CONNECTING)

    def down(self, reason: str) -> bool:
        self._note(reason)
        return self._become(Health.DOWN)

    @property
    def is_up(self) -> bool:
        return self.health is Health.UP

    def _note(self, reason: str | None) -> None:
        if reason:
            self.last_error, self.last_error_at = reason, self._clock()

    def _become(self, health: Health) -> bool:
        if health is self.health:
            return False
        self.health, self.since = health, self._clock()
        self.changes += 1
        return True

    def describe(self) -> dict:
        """JSON for the control API: times are Unix seconds."""
        return {"state": self.health.value, "since": round(self.since, 3), "last_error": self.last_error,
                "last_error_at": None if self.last_error_at is None else round(self.last_error_at, 3)}
