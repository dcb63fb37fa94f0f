"""Links: the workers a route's first hop can be (a TCP connection, a secure channel), which
tell their watchers when they close, so that what rides on them (channels inside channels,
relays, registrations) goes away with them."""

from __future__ import annotations

import logging

from mypy_extensions import trait

log = logging.getLogger(__name__)


@trait
class CloseNotifier:
    """Mixin (a mypyc trait: in the compiled build only compiled classes may use it):
    `on_close(callback)` returns a function that cancels the watch."""

    def _init_close_notifier(self) -> None:
        self._close_callbacks: dict = {}
        self._notified = False

    def on_close(self, callback):
        if self._notified:
            callback(self)
            return lambda: None
        token = object()
        self._close_callbacks[token] = callback
        return lambda: self._close_callbacks.pop(token, None)

    def _notify_closed(self) -> None:
        self._notified = True
        callbacks, self._close_callbacks = list(self._close_callbacks.values()), {}
        for callback in callbacks:
            try:
                callback(self)
            except Exception:  # noqa: BLE001 - one watcher must not stop the others
                log.exception("close callback failed")


def watch_link(node, address, callback):
    """Call `callback` when the link at `address` on `node` closes; returns a cancel
    function, or None when that address is not a link (a local worker)."""
    on_close = getattr(node.workers.get(address), "on_close", None)
    return on_close(callback) if on_close is not None else None
