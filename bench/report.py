"""The results: a table with ratios to the baselines, a JSON file and a PNG chart."""

from __future__ import annotations

import json
from pathlib import Path

COLUMNS = [("iperf3_mb_s", "iperf3 MB/s"), ("redis_1_rps", "PING c=1 req/s"), ("redis_1_p50_ms", "p50 ms"),
           ("redis_50_rps", "PING c=50 req/s"), ("conn_per_s", "conn/s")]


def table(results: dict) -> str:
    lines = [f"{'path':<26}" + "".join(f"{title:>17}" for _, title in COLUMNS)]
    for path, row in results["paths"].items():
        cells = []
        for key, _ in COLUMNS:
            value = row.get(key)
            cells.append(f"{value:>17,.1f}" if isinstance(value, (int, float)) else f"{'-':>17}")
        lines.append(f"{path:<26}" + "".join(cells))
        if row.get("errors"):
            lines += [f"    error: {e}" for e in row["errors"]]
    return "\n".join(lines)


def ratios(results: dict, ours: str, baseline: str) -> dict:
    a, b = results["paths"].get(ours, {}), results["paths"].get(baseline, {})
    return {key: round(a[key] / b[key], 2) for key, _ in COLUMNS
            if isinstance(a.get(key), (int, float)) and b.get(key) and key != "redis_1_p50_ms"}


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
