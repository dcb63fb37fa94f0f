"""Single-flight calls: while one greenlet builds something (a route, a TCP connection, a
secure channel), others that want the same thing wait for its result instead of building
their own. After a failure, 100 clients arriving at once cause one connection and one
handshake, not 100."""

from __future__ import annotations

from gevent.event import AsyncResult


class SingleFlight:
    def __init__(self):
        self._calls: dict = {}

    def run(self, key, build):
        """build() once for all callers of the same key that overlap; they share its result
        or its exception."""
        pending = self._calls.get(key)
        if pending is not None:
            return pending.get()
        result = self._calls[key] = AsyncResult()
        try:
            value = build()
        except BaseException as exc:
            result.set_exception(exc)
            raise
        finally:
            del self._calls[key]
        result.set(value)
        return value
