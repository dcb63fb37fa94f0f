"""`make bench`: every workload through every path in one run, so ratios are fair.

    python -m bench [--seconds N] [--quick] [--only KIND[,KIND]] [--rounds N] [--out FILE]

Prints a table and the ratios of our encrypted portal to the OpenSSH chain, writes JSON
and a PNG chart next to it, and exits non-zero only when a path could not be measured.
It reports; it does not gate anything.

This machine's speed drifts by 10-40 % over minutes (shared, virtual), and every path of a
workload is measured at a different minute: `--rounds N` measures the paths round-robin N
times and keeps each number's median (the worst of failures), so that a slow minute lands
on every path alike. Use it before deciding anything from a ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

from bench import failover, paths, report, targets, udp, workloads
from bench.net import process_cpu_seconds

TARGETS = {"iperf3": targets.iperf3, "redis": targets.redis, "echo": targets.echo,
           "stall": targets.bulk_or_echo, "pgbench": targets.postgres}
KINDS = (*TARGETS, "udp")  # udp: its own paths (bench/udp.py), no OpenSSH to compare with


def hot_path_build() -> str:
    """Which build the nodes run (they import what we import: make bench puts the compiled
    one first on PYTHONPATH)."""
    from appliance.node import node
    return "compiled (mypyc)" if node.__file__.endswith(".so") else "pure Python"


def raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, wanted), hard), hard))


def measure(path_name: str, make_path, target: int, kind: str, opts, row: dict, first: bool = True) -> None:
    """One workload through one path, into `row`; idle connections only in the `first` round."""
    with make_path(target) as path:
        if kind == "iperf3":
            try:
                value = workloads.iperf3_mb_per_s(path.port, opts.seconds)
            except RuntimeError:  # the server may still be closing the previous test: once more
                time.sleep(2)
                value = workloads.iperf3_mb_per_s(path.port, opts.seconds)
            row["iperf3_mb_s"] = round(value, 1)
        elif kind == "redis":
            for clients in (1, 50):
                path_before = process_cpu_seconds(path.cpu_pids())
                rps, p50, cpu_us = workloads.redis_ping(path.port, clients, opts.requests)
                row[f"redis_{clients}_rps"], row[f"redis_{clients}_p50_ms"] = round(rps), p50
                row[f"redis_{clients}_cpu_us"] = cpu_us
                if path.cpu_pids():  # the path's own processes alone, without the clients and redis
                    spent = sum(process_cpu_seconds(path.cpu_pids())) - sum(path_before)
                    row[f"redis_{clients}_path_cpu_us"] = round(spent / opts.requests * 1e6)
        elif kind == "echo":
            row["conn_per_s"] = round(workloads.connections_per_second(path.port, opts.seconds))
            # ours at every count; OpenSSH (which slows down badly with thousands of
            # channels) only at the smallest, as the comparison
            counts = [] if not first else opts.idle if path_name.startswith("ockam") else \
                opts.idle[:1] if path.pids else []
            for count in counts:
                row[f"idle_kb_per_conn_{count}"] = workloads.idle_connections(path.port, path.pids, count)
        elif kind == "stall":
            row.update(workloads.round_trips_while_stalled(path.port, path.pids, opts.seconds * 2))
        elif kind == "pgbench":
            tps, cpu_us = workloads.pgbench_select(path.port, opts.seconds)
            row["pgbench_tps"], row["pgbench_cpu_us"] = round(tps), cpu_us


def combine(rows: list) -> dict:
    """One row from several rounds: each number's median (a measured one: median_low), the
    worst of failures, all of a yes/no, and what else there is (per-hop RSS) from the first."""
    out = {}
    for key in rows[0]:
        values = [row[key] for row in rows if key in row]
        if isinstance(values[0], bool):
            out[key] = all(values)
        elif isinstance(values[0], (int, float)):
            out[key] = max(values) if key.endswith("failures") else statistics.median_low(values)
        else:
            out[key] = values[0]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--seconds", type=int, default=5, help="duration of timed runs")
    parser.add_argument("--requests", type=int, default=30000, help="redis-benchmark requests")
    parser.add_argument("--idle", default="1000,10000", help="idle connection counts")
    parser.add_argument("--quick", action="store_true", help="short runs, 1000 idle connections")
    parser.add_argument("--only", default=",".join(KINDS), metavar="KIND[,KIND]",
                        help=f"run only these workloads, of: {','.join(KINDS)}")
    parser.add_argument("--rounds", type=int, default=1, help="measure the paths round-robin N times: medians")
    parser.add_argument("--out", default="bench/results/latest.json")
    opts = parser.parse_args()
    kinds = [kind for kind in opts.only.split(",") if kind]
    if not kinds or set(kinds) - set(KINDS):
        parser.error(f"--only takes workloads of: {','.join(KINDS)}")
    if opts.rounds < 1:
        parser.error("--rounds takes a count of at least 1")
    if opts.quick:
        opts.seconds, opts.requests, opts.idle = 2, 5000, "1000"
    opts.idle = [int(n) for n in opts.idle.split(",") if n]
    raise_fd_limit(4 * max(opts.idle or [0]) + 1024)  # nodes inherit it from us

    results = {"when": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.platform(),
               "python": sys.version.split()[0], "hot_path": hot_path_build(), "seconds": opts.seconds,
               "rounds": opts.rounds, "paths": {}}
    print(f"hot path: {results['hot_path']}", flush=True)
    for kind in [k for k in kinds if k in TARGETS]:
        with contextlib.ExitStack() as stack:
            try:
                target = stack.enter_context(TARGETS[kind]())
            except Exception as exc:  # noqa: BLE001 - a target that cannot start costs its rows only
                for name in paths.PATHS:
                    results["paths"].setdefault(name, {}).setdefault("errors", []).append(f"{kind}: {exc}")
                print(f"  {kind:<7} no target: {exc}", flush=True)
                continue
            rounds = {name: [] for name in paths.PATHS}
            for round_ in range(opts.rounds):
                for name, make_path in paths.PATHS.items():
                    row = {}
                    try:
                        measure(name, make_path, target, kind, opts, row, first=not round_)
                    except Exception as exc:  # noqa: BLE001 - one path failing must not hide the others
                        results["paths"].setdefault(name, {}).setdefault("errors", []).append(f"{kind}: {exc}")
                    if row:
                        rounds[name].append(row)
                    print(f"  {kind:<7} {name:<26} {row}", flush=True)
                    time.sleep(0.3)
            for name, rows in rounds.items():
                results["paths"].setdefault(name, {}).update(combine(rows) if rows else {})
    if "echo" in kinds:  # a relay killed under load: an echo target of its own
        try:
            with targets.echo() as target:
                results["relay_kill"] = failover.relay_kill(target, max(6.0, 2.0 * opts.seconds))
        except Exception as exc:  # noqa: BLE001 - reported, the rest stands
            results["relay_kill"] = {"error": str(exc)}
        print(f"  relay killed under load (2 relays, failover inlet): {results['relay_kill']}", flush=True)
    if "udp" in kinds:  # datagrams through a UDP portal, next to the same clients sending directly
        results["udp"] = udp.run(opts.seconds)
    results["encrypted_vs_openssh"] = report.ratios(results, "ockam portal (encrypted)", "openssh chain")
    results["plain_vs_openssh"] = report.ratios(results, "ockam portal (plain)", "openssh chain")
    results["plain_vs_socat"] = report.ratios(results, "ockam portal (plain)", "socat")
    print(report.table(results))
    idle = [f"  {name:<26} {key.rsplit('_', 1)[1]:>6} connections: {row[key]}"
            for name, row in results["paths"].items() for key in sorted(k for k in row if k.startswith("idle_kb"))]
    if idle:
        print("\nidle RSS per connection, KB, per process on the path:", *idle, sep="\n")
    print(f"\nencrypted portal / openssh chain: {results['encrypted_vs_openssh']}")
    print(f"plain portal / openssh chain:     {results['plain_vs_openssh']}")
    print(f"plain portal / socat:             {results['plain_vs_socat']}")
    if "udp" in results:
        print("\nUDP portal (inlet -> relay <- outlet), one client:", udp.summary(results["udp"]), sep="\n")
    results["targets"] = report.targets(results)
    print("\ntargets (this run):")
    for what, value, met in results["targets"]:
        print(f"  {'met    ' if met else 'not met' if met is False else 'no data'}  {what}: {value}")
    out = Path(opts.out)
    print(f"results: {' and '.join(str(f) for f in report.write(results, out))}")
    return 1 if any(row.get("errors") for row in results["paths"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
