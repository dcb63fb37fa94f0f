"""Workloads run through a path; each returns plain numbers for the results table."""

from __future__ import annotations

import csv
import hashlib
import io
import random
import statistics
import json
import re
import shutil
import socket
import subprocess
import threading
import time

from bench.net import machine_cpu_seconds, rss_kb


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


def cpu_us_per(count: int, cpu_before: float) -> int:
    """The machine's busy CPU since `cpu_before` per request (or transaction), in microseconds."""
    return round((machine_cpu_seconds() - cpu_before) / count * 1e6)


def redis_ping(port: int, clients: int, requests: int) -> tuple:
    """(requests per second, p50 latency in ms, machine CPU us per request) of
    redis-benchmark PING_INLINE."""
    if shutil.which("redis-benchmark") is None:
        raise RuntimeError("redis-benchmark is not installed")
    cpu_before = machine_cpu_seconds()
    proc = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", "ping_inline",
                           "-c", str(clients), "-n", str(requests), "--csv"],
                          capture_output=True, text=True, timeout=300)
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    if proc.returncode != 0 or not rows:
        raise RuntimeError(f"redis-benchmark failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return float(rows[0]["rps"]), float(rows[0]["p50_latency_ms"]), cpu_us_per(requests, cpu_before)


def pgbench_select(port: int, seconds: int) -> tuple:
    """(transactions per second, machine CPU us per transaction) of `pgbench -S` (one
    primary-key SELECT per transaction), 8 clients on 2 threads, against the database
    `postgres` as the superuser `postgres` (see targets.postgres)."""
    if shutil.which("pgbench") is None:
        raise RuntimeError("pgbench is not installed")
    cpu_before = machine_cpu_seconds()
    proc = subprocess.run(["pgbench", "-S", "-c", "8", "-j", "2", "-T", str(seconds), "-n",
                           "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "postgres"],
                          capture_output=True, text=True, timeout=seconds + 60)
    tps = re.search(r"^tps = ([\d.]+) \(without initial connection time\)", proc.stdout, re.M)
    done = re.search(r"^number of transactions actually processed: (\d+)", proc.stdout, re.M)
    if proc.returncode != 0 or not tps or not done or not int(done[1]):
        raise RuntimeError(f"pgbench failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return float(tps[1]), cpu_us_per(int(done[1]), cpu_before)


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


def round_trips_while_stalled(port: int, pids: dict, seconds: float, mib: int = 256) -> dict:
    """Head-of-line blocking: client A asks for `mib` MiB, reads one byte and stops
    reading; for `seconds` client B does a round trip every 20 ms on its connection and
    opens a new connection every 0.5 s. B's latencies and failures are the result; then A
    resumes and must get every byte (sha256 checked against the target's data). RSS
    growth is the largest of the path's processes, from before A to the end of B's run."""
    before = {name: rss_kb(pid) for name, pid in pids.items()}
    block = random.Random(1).randbytes(1 << 20)
    expected = hashlib.sha256()
    for _ in range(mib):
        expected.update(block)
    stalled = socket.create_connection(("127.0.0.1", port), timeout=30)
    stalled.sendall(f"bulk {mib}\n".encode())
    got = hashlib.sha256(stalled.recv(1))
    size = 1
    time.sleep(1.0)  # let A's stream fill whatever it can
    rtts, failures = [], 0
    b = socket.create_connection(("127.0.0.1", port), timeout=5)
    stop, next_connection = time.monotonic() + seconds, 0.0
    while time.monotonic() < stop:
        started = time.monotonic()
        try:
            b.sendall(b"ping")
            if b.recv(4) != b"ping":
                raise OSError("wrong echo")
            rtts.append((time.monotonic() - started) * 1000)
        except OSError:
            failures += 1
            b.close()
            b = socket.create_connection(("127.0.0.1", port), timeout=5)
        if started >= next_connection:
            next_connection = started + 0.5
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as fresh:
                    fresh.sendall(b"n")
                    if fresh.recv(1) != b"n":
                        raise OSError("wrong echo")
            except OSError:
                failures += 1
        time.sleep(0.02)
    b.close()
    growth = max(((rss_kb(pid) - before[name]) / 1024 for name, pid in pids.items()), default=None)
    stalled.settimeout(60)
    while size < mib << 20:
        data = stalled.recv(1 << 20)
        if not data:
            break
        got.update(data)
        size += len(data)
    stalled.close()
    rtts.sort()
    return {"stalled_rtt_p50_ms": round(statistics.median(rtts), 2) if rtts else None,
            "stalled_rtt_p99_ms": round(rtts[int(len(rtts) * 0.99) - 1], 2) if rtts else None,
            "stalled_failures": failures, "stalled_resumed_intact": got.digest() == expected.digest(),
            "stalled_rss_growth_mb": None if growth is None else round(growth, 1)}
