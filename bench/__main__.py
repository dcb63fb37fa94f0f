"""Run every workload through every path in one run; print a table and ratios, save JSON.

    python -m bench [--seconds N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from bench import paths, workloads


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--seconds", type=int, default=5, help="duration of each iperf3 run")
    parser.add_argument("--out", default="bench/results/latest.json")
    opts = parser.parse_args()

    iperf_port = paths.free_port()
    server = subprocess.Popen(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(iperf_port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = []
    try:
        paths.wait_for_port(iperf_port)
        for name, path in paths.PATHS.items():
            try:
                with path(iperf_port) as port:
                    value = workloads.iperf3_mb_per_s(port, opts.seconds)
                rows.append({"path": name, "iperf3_mb_s": round(value, 1)})
            except Exception as exc:  # noqa: BLE001 - one path failing must not hide the others
                rows.append({"path": name, "error": str(exc)})
            time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=10)

    baseline = {r["path"]: r.get("iperf3_mb_s") for r in rows}
    print(f"{'path':<36} {'iperf3 MB/s':>12} {'vs direct':>10} {'vs socat':>9}")
    for row in rows:
        value = row.get("iperf3_mb_s")
        if value is None:
            print(f"{row['path']:<36} {'error: ' + row['error']}")
            continue
        ratios = [f"{value / baseline[b]:.2f}x" if baseline.get(b) else "-" for b in ("direct", "socat")]
        print(f"{row['path']:<36} {value:>12.1f} {ratios[0]:>10} {ratios[1]:>9}")
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": platform.platform(),
                               "python": sys.version.split()[0], "seconds": opts.seconds, "rows": rows},
                              indent=2))
    print(f"results: {out}")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
