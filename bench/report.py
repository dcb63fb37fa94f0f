"""The results: a table with ratios to the baselines, a JSON file and a PNG chart."""

from __future__ import annotations

import json
from pathlib import Path

COLUMNS = [("iperf3_mb_s", "iperf3 MB/s", ",.1f"),
           ("redis_1_rps", "PING c=1 req/s", ",.0f"), ("redis_1_p50_ms", "p50 ms", ".3f"),
           ("redis_1_cpu_us", "cpu us/req c=1", ",.0f"),
           ("redis_50_rps", "PING c=50 req/s", ",.0f"), ("redis_50_p50_ms", "p50 ms", ".3f"),
           ("redis_50_cpu_us", "cpu us/req c=50", ",.0f"),
           ("pgbench_tps", "pgbench -S tps", ",.0f"), ("pgbench_cpu_us", "cpu us/xact", ",.0f"),
           ("conn_per_s", "conn/s", ",.0f"),
           ("stalled_rtt_p99_ms", "p99 B (A stall)", ".1f"), ("stalled_failures", "B fails", "d")]
LATENCIES = {"redis_1_p50_ms", "redis_50_p50_ms", "stalled_rtt_p99_ms", "stalled_failures"}  # no ratio
CPU = {"redis_1_cpu_us", "redis_50_cpu_us", "pgbench_cpu_us"}  # lower is better: ratio inverted
CPU_NOTE = ("cpu us/req, us/xact: busy CPU time of the whole machine (every process on the path, the\n"
            "target and the client) per request or pgbench transaction. Its ratios are baseline / ours,\n"
            "so that above 1 is better for ours, as for the other columns.")


def table(results: dict) -> str:
    """One row per path; only the columns this run measured (see `--only`)."""
    rows = results["paths"]
    columns = [c for c in COLUMNS if any(isinstance(row.get(c[0]), (int, float)) for row in rows.values())]
    lines = [f"{'path':<26}" + "".join(f"{title:>16}" for _, title, _ in columns)]
    for path, row in rows.items():
        cells = []
        for key, _, spec in columns:
            value = row.get(key)
            cells.append(f"{value:>16{spec}}" if isinstance(value, (int, float)) else f"{'-':>16}")
        lines.append(f"{path:<26}" + "".join(cells))
        if row.get("errors"):
            lines += [f"    error: {e}" for e in row["errors"]]
    if any(key in CPU for key, _, _ in columns):
        lines.append(CPU_NOTE)
    return "\n".join(lines)


def ratio(ours: dict, baseline: dict, key: str):
    """How many times better ours is at `key` (above 1: better): ours / baseline, or
    baseline / ours for CPU per request; None when either number is missing."""
    top, bottom = (baseline, ours) if key in CPU else (ours, baseline)
    if isinstance(top.get(key), (int, float)) and bottom.get(key):
        return round(top[key] / bottom[key], 2)
    return None


def ratios(results: dict, ours: str, baseline: str) -> dict:
    a, b = results["paths"].get(ours, {}), results["paths"].get(baseline, {})
    return {key: value for key, _, _ in COLUMNS
            if key not in LATENCIES and (value := ratio(a, b, key)) is not None}


def targets(results: dict) -> list:
    """The issue's targets against this run: (what, measured, met) for each; None when the
    run lacks the numbers. Ratios are of our encrypted portal to the OpenSSH chain (both
    encrypted); the plain portal is reported next to it for reference."""
    paths = results["paths"]
    ours, plain, ssh = (paths.get(n, {}) for n in ("ockam portal (encrypted)", "ockam portal (plain)",
                                                    "openssh chain"))

    idle = [kb for row in (ours, plain) for key, hops in row.items() if key.startswith("idle_kb")
            for kb in hops.values()]
    checks = [("encrypted throughput >= 1.5 x OpenSSH", ratio(ours, ssh, "iperf3_mb_s"), 1.5)]
    for clients in (1, 50):
        key = f"redis_{clients}_rps"
        checks.append((f"redis PING c={clients} >= 1.0 x OpenSSH (encrypted; plain {ratio(plain, ssh, key)})",
                       ratio(ours, ssh, key), 1.0))
    key = "pgbench_tps"
    checks.append((f"pgbench -S, 8 clients >= 1.0 x OpenSSH (encrypted; plain {ratio(plain, ssh, key)})",
                   ratio(ours, ssh, key), 1.0))
    key = "conn_per_s"
    checks.append((f"new connections/s >= 10 x OpenSSH (encrypted; plain {ratio(plain, ssh, key)})",
                   ratio(ours, ssh, key), 10))
    rows = [(what, value, None if value is None else value >= limit) for what, value, limit in checks]
    worst = max(idle) if idle else None
    rows.append(("<= 12 KB RSS per idle connection per hop", worst, None if worst is None else worst <= 12))
    slower = [key for key, _, _ in COLUMNS if key not in LATENCIES and key not in CPU
              and (value := ratio(plain, ours, key)) is not None and value < 1]
    if ours and plain:
        rows.append(("plain portal at least as fast as encrypted everywhere",
                     f"slower at {', '.join(slower)}" if slower else "yes", not slower))
    for name, row in (("encrypted", ours), ("plain", plain)):
        if "stalled_rtt_p99_ms" in row:
            p99, fails, intact = row["stalled_rtt_p99_ms"], row["stalled_failures"], row["stalled_resumed_intact"]
            growth = row.get("stalled_rss_growth_mb")
            rows.append((f"{name}: B's round trips while A is stalled: p99 <= 50 ms, no failures, A intact",
                         f"{p99} ms, {fails} failures, sha256 {'ok' if intact else 'WRONG'}",
                         p99 is not None and p99 <= 50 and not fails and intact))
            rows.append((f"{name}: RSS growth per node while A is stalled <= 16 MB + one 1 MiB window",
                         growth, None if growth is None else growth <= 17))
    if "idle_kb_per_conn_10000" in ours:
        rows.append(("10 000 concurrent connections through one relay", "all echoed", True))
    return rows


def write(results: dict, out: Path) -> list:
    """The JSON, and the chart next to it when there is one; returns the files written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    try:
        return [out, out.with_suffix(".png")] if chart(results, out.with_suffix(".png")) else [out]
    except ImportError:
        print("matplotlib is not installed: no chart (pip install -e '.[bench]')")
        return [out]


def chart(results: dict, path: Path) -> bool:
    """Bars of the throughput metrics this run measured; False when it measured none."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [("iperf3_mb_s", "throughput, MB/s"), ("redis_1_rps", "redis PING, 1 client, req/s"),
               ("redis_50_rps", "redis PING, 50 clients, req/s"),
               ("pgbench_tps", "pgbench -S, 8 clients, tps"), ("conn_per_s", "new connections/s")]
    names = list(results["paths"])
    metrics = [m for m in metrics if any(results["paths"][n].get(m[0]) for n in names)]  # this run's
    if not metrics:
        return False
    # at least two panels wide, so that the title fits
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * max(len(metrics), 2), 4.2), squeeze=False)
    axes = axes[0]
    for ax, (key, title) in zip(axes, metrics):
        values = [results["paths"][n].get(key) or 0 for n in names]
        ax.barh(names, values, color=["#999" if "ockam" not in n else "#2a7" for n in names])
        ax.set_title(title, fontsize=10)
        ax.invert_yaxis()
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:,.0f}", va="center", fontsize=8)
        ax.tick_params(labelsize=8)
        if ax is not axes[0]:
            ax.set_yticklabels([])
    fig.suptitle(f"ockam-appliance portals vs baselines ({results['when']}, one run, loopback)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
