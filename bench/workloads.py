"""Workloads run through a path; each returns plain numbers for the results table."""

from __future__ import annotations

import csv
import io
import json
import shutil
import socket
import subprocess
import threading
import time

from bench.net import rss_kb


def iperf3_mb_per_s(port: int, seconds: int) -> float:
    """Bulk throughput (client -> server) as iperf3 reports it at the receiver, in MB/s."""
    if shutil.which("iperf3") is None:
        raise RuntimeError("iperf3 is not installed")
    proc = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J"],
                          capture_output=True, text=True, timeout=seconds + 60)
    report = json.loads(proc.stdout or "{}")
    if proc.returncode != 0 or "error" in report:
        raise RuntimeError(f"iperf3 failed: {report.get('error') or proc.stderr.strip()}")
    return report["end"]["sum_received"]["bits_per_second"] / 8 / 1e6


def redis_ping(port: int, clients: int, requests: int) -> tuple:
    """(requests per second, p50 latency in ms) of redis-benchmark PING_INLINE."""
    if shutil.which("redis-benchmark") is None:
        raise RuntimeError("redis-benchmark is not installed")
    proc = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", "ping_inline",
                           "-c", str(clients), "-n", str(requests), "--csv"],
                          capture_output=True, text=True, timeout=300)
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    if proc.returncode != 0 or not rows:
        raise RuntimeError(f"redis-benchmark failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return float(rows[0]["rps"]), float(rows[0]["p50_latency_ms"])


def connections_per_second(port: int, seconds: float, threads: int = 4) -> float:
    """New connections per second, each proven end to end by a one-byte echo."""
    done, errors, stop = [0] * threads, [], time.monotonic() + seconds

    def worker(i: int) -> None:
        while time.monotonic() < stop:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                    sock.sendall(b"x")
                    if sock.recv(1) != b"x":
                        raise RuntimeError("no echo")
                done[i] += 1
            except (OSError, RuntimeError) as exc:
                errors.append(exc)
                return

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} connections failed: {errors[0]}")
    return sum(done) / (time.monotonic() - started)


def idle_connections(port: int, pids: dict, count: int) -> dict:
    """Open `count` connections (each echoed once), then report RSS growth per connection
    for every process on the path, in KB; all connections must work."""
    before = {name: rss_kb(pid) for name, pid in pids.items()}
    socks = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            sock.sendall(b"x")
            if sock.recv(1) != b"x":
                raise RuntimeError(f"connection {len(socks)} got no echo")
            socks.append(sock)
        time.sleep(1.0)
        after = {name: rss_kb(pid) for name, pid in pids.items()}
        return {name: round((after[name] - before[name]) / count, 2) for name in pids}
    finally:
        for sock in socks:
            sock.close()
