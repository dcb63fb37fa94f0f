"""systemd's notify protocol (sd_notify) without libsystemd: one datagram per state change.

READY=1 once the topology is up, STOPPING=1 on the way out, RELOADING=1 around a reload,
and WATCHDOG=1 pings sent from the gevent loop itself, so a wedged loop gets restarted.
Outside systemd ($NOTIFY_SOCKET unset) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket

import gevent

log = logging.getLogger(__name__)


def notify(*states: str) -> bool:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto("\n".join(states).encode(), address)
        return True
    except OSError as exc:
        log.warning("sd_notify to %s failed: %s", path, exc)
        return False


def watchdog_interval() -> float | None:
    """Half the watchdog timeout systemd asked for, or None when there is no watchdog (or
    it is another process's). WATCHDOG_PID names the service's main process: ours, or, in
    the one-file executable, the bootloader whose child we are (the unit's NotifyAccess=all
    lets the child ping; a real systemd found the pings missing and the node killed every
    WatchdogSec)."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or (pid and pid not in (str(os.getpid()), str(os.getppid()))):
        return None
    return int(usec) / 2e6


def start_watchdog():
    """A greenlet that pings the watchdog while the loop runs; None without a watchdog."""
    interval = watchdog_interval()
    if interval is None or not os.environ.get("NOTIFY_SOCKET"):
        return None

    def ping():
        while True:
            notify("WATCHDOG=1")
            gevent.sleep(interval)

    return gevent.spawn(ping)
