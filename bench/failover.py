"""A relay killed under load (issue 15): two relay nodes, an edge registered at both, an inlet
with a route through each (failover), new connections as fast as THREADS clients make them,
each proven by an echo. One third in, relay r1 is killed with -9; two thirds in, started
again. Reports new connections per second before, during and after, the failures in the
first second after the kill and later, and how long until r1's route answers again.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from bench.net import free_port
from bench.paths import ockam_command

THREADS = 4


def relay_kill(target: int, seconds: float) -> dict:
    home = tempfile.mkdtemp(prefix="ockam-bench-", dir="/tmp")
    env = {**os.environ, "OCKAM_HOME": home}

    def ockam(*args: str) -> str:
        return subprocess.run(ockam_command() + list(args), env=env, check=True, capture_output=True,
                              text=True).stdout.strip()

    port = free_port()
    try:
        for relay in ("r1", "r2"):
            ockam("node", "create", relay, f"--tcp-listener-address=127.0.0.1:{free_port()}")
        ockam("node", "create", "e")
        ockam("relay", "create", "e", "--at", "/node/r1", "--at", "/node/r2", "--to", "e")
        ockam("tcp-outlet", "create", "--at", "e", "--to", f"127.0.0.1:{target}")
        ockam("node", "create", "c")
        ockam("tcp-inlet", "create", "--at", "c", "--from", f"127.0.0.1:{port}", "--alias", "bench",
              "--to", "/node/r1/service/forward_to_e/service/outlet", "--to", "/node/r2/service/forward_to_e/service/outlet")
        results: list = []  # (monotonic time, ok)
        stop = time.monotonic() + seconds

        def client() -> None:
            while time.monotonic() < stop:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                        sock.sendall(b"x")
                        ok = sock.recv(1) == b"x"
                except OSError:
                    ok = False
                results.append((time.monotonic(), ok))

        started = time.monotonic()
        pool = [threading.Thread(target=client) for _ in range(THREADS)]
        for thread in pool:
            thread.start()
        time.sleep(seconds / 3)
        killed = time.monotonic()
        os.kill(json.loads(ockam("node", "show", "r1", "--output", "json"))["pid"], signal.SIGKILL)
        time.sleep(max(0.0, started + 2 * seconds / 3 - time.monotonic()))
        ockam("node", "start", "r1")
        restarted = time.monotonic()
        back = None
        while time.monotonic() < restarted + 10:
            routes = json.loads(ockam("tcp-inlet", "show", "bench", "--at", "c", "--output", "json"))["routes"]
            if routes[0]["state"] == "up":
                back = time.monotonic() - restarted
                break
            time.sleep(0.1)
        for thread in pool:
            thread.join()

        def window(start: float, end: float) -> tuple:
            made = [ok for at, ok in results if start <= at < end]
            return len(made), made.count(False)

        before, _ = window(started, killed)
        first, first_failed = window(killed, killed + 1)
        rest, rest_failed = window(killed + 1, stop + 1)
        return {"conn_per_s_before_kill": round(before / (killed - started)),
                "conn_per_s_first_second": first, "failed_first_second": first_failed,
                "failed_later": rest_failed, "connections": len(results),
                "r1_back_s": None if back is None else round(back, 2)}
    finally:
        subprocess.run(ockam_command() + ["node", "delete", "--all"], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
