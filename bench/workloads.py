"""Workloads run through a path: each returns a number for the results table."""

from __future__ import annotations

import json
import shutil
import subprocess


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
