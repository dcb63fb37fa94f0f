"""The results: a table with ratios to the baselines, a JSON file and a PNG chart."""

from __future__ import annotations

import json
from pathlib import Path

COLUMNS = [("iperf3_mb_s", "iperf3 MB/s", ",.1f"), ("redis_1_rps", "PING c=1 req/s", ",.0f"),
           ("redis_1_p50_ms", "p50 ms", ".3f"), ("redis_50_rps", "PING c=50 req/s", ",.0f"),
           ("redis_50_p50_ms", "p50 ms", ".3f"), ("conn_per_s", "conn/s", ",.0f"),
           ("stalled_rtt_p99_ms", "p99 B (A stall)", ".1f"), ("stalled_failures", "B fails", "d")]
LATENCIES = {"redis_1_p50_ms", "redis_50_p50_ms", "stalled_rtt_p99_ms", "stalled_failures"}  # no ratio


def table(results: dict) -> str:
    lines = [f"{'path':<26}" + "".join(f"{title:>16}" for _, title, _ in COLUMNS)]
    for path, row in results["paths"].items():
        cells = []
        for key, _, spec in COLUMNS:
            value = row.get(key)
            cells.append(f"{value:>16{spec}}" if isinstance(value, (int, float)) else f"{'-':>16}")
        lines.append(f"{path:<26}" + "".join(cells))
        if row.get("errors"):
            lines += [f"    error: {e}" for e in row["errors"]]
    return "\n".join(lines)


def ratios(results: dict, ours: str, baseline: str) -> dict:
    a, b = results["paths"].get(ours, {}), results["paths"].get(baseline, {})
    return {key: round(a[key] / b[key], 2) for key, _, _ in COLUMNS
            if isinstance(a.get(key), (int, float)) and b.get(key) and key not in LATENCIES}


def targets(results: dict) -> list:
    """The issue's targets against this run: (what, measured, met) for each; None when the
    run lacks the numbers. Ratios are of our encrypted portal to the OpenSSH chain (both
    encrypted); the plain portal is reported next to it for reference."""
    paths = results["paths"]
    ours, plain, ssh = (paths.get(n, {}) for n in ("ockam portal (encrypted)", "ockam portal (plain)",
                                                    "openssh chain"))

    def ratio(row, key):
        return round(row[key] / ssh[key], 2) if isinstance(row.get(key), (int, float)) and ssh.get(key) else None

    idle = [kb for row in (ours, plain) for key, hops in row.items() if key.startswith("idle_kb")
            for kb in hops.values()]
    checks = [("encrypted throughput >= 1.5 x OpenSSH", ratio(ours, "iperf3_mb_s"), 1.5)]
    for clients in (1, 50):
        key = f"redis_{clients}_rps"
        checks.append((f"redis PING c={clients} >= 1.0 x OpenSSH (encrypted; plain {ratio(plain, key)})",
                       ratio(ours, key), 1.0))
    checks.append((">= 1000 new connections/s (encrypted; plain "
                   f"{plain.get('conn_per_s')})", ours.get("conn_per_s"), 1000))
    rows = [(what, value, None if value is None else value >= limit) for what, value, limit in checks]
    worst = max(idle) if idle else None
    rows.append(("<= 25 KB RSS per idle connection per hop", worst, None if worst is None else worst <= 25))
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


def write(results: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    try:
        chart(results, out.with_suffix(".png"))
    except ImportError:
        print("matplotlib is not installed: no chart (pip install -e '.[bench]')")


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [("iperf3_mb_s", "throughput, MB/s"), ("redis_1_rps", "redis PING, 1 client, req/s"),
               ("redis_50_rps", "redis PING, 50 clients, req/s"), ("conn_per_s", "new connections/s")]
    names = list(results["paths"])
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 4.2))
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
