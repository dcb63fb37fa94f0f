"""Two builds, one workload, alternating: is a change faster, or was the machine?

    python -m bench.ab KIND [--plain] [--rounds N] TREE_A TREE_B

KIND is iperf3, redis, echo or pgbench, measured as `make bench` does. A TREE is a checkout
(git worktree add) or a compiled build of one (`python packaging/compiled.py DEST`). Each round starts the three nodes of one tree (run
in that tree, with it on PYTHONPATH), measures the encrypted portal (plain with --plain),
stops them, then does the same with the other tree, the other one first in the next round;
the machine's drift between minutes thus lands on both. Prints every round and each tree's mean.

Each round runs in its tree's folder: `python -m` puts the working directory first on the
module path, and a node started before `-P` (host/process.py) would otherwise run the code
of whatever checkout bench.ab was started from, whatever the tree.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

ONE_ROUND = r"""
import argparse, functools, json, sys
from bench import paths
from bench.__main__ import TARGETS, measure
kind, secure = sys.argv[1], sys.argv[2] == "encrypted"
opts = argparse.Namespace(seconds=5, requests=20000, idle=[])
row = {}
with TARGETS[kind]() as port:
    measure("ockam portal", functools.partial(paths.ockam_relay_portal, secure=secure), port, kind, opts, row,
            first=False)
print(json.dumps({key: value for key, value in row.items() if isinstance(value, (int, float))}))
"""


def one_round(tree: str, kind: str, mode: str) -> dict:
    tree = os.path.abspath(tree)
    # the tree's `bench` if it has one, else ours: a tree may be a compiled build
    # (packaging/compiled.py DEST), which holds `appliance` and nothing else
    path = os.pathsep.join([tree, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))])
    proc = subprocess.run([sys.executable, "-c", ONE_ROUND, kind, mode], env={**os.environ, "PYTHONPATH": path},
                          cwd=tree, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{tree}: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'failed'}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.ab")
    parser.add_argument("kind", choices=["iperf3", "redis", "echo", "pgbench"])
    parser.add_argument("trees", nargs=2, metavar="TREE", help="checkouts of the two builds (git worktree add)")
    parser.add_argument("--plain", action="store_true", help="the plain portal instead of the encrypted one")
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    mode = "plain" if opts.plain else "encrypted"
    results = {tree: [] for tree in opts.trees}
    for round_ in range(1, opts.rounds + 1):
        # A B, B A, A B...: the tree that runs first in a round is favoured (measured: 3-6 % in redis at
        # one client, either tree), so each goes first in half of the rounds
        for tree in (opts.trees if round_ % 2 else opts.trees[::-1]):
            row = one_round(tree, opts.kind, mode)
            results[tree].append(row)
            print(f"round {round_}  {tree:<30} " + "  ".join(f"{k} {v:,.1f}" for k, v in row.items()), flush=True)
    for tree, rows in results.items():
        print(f"mean     {tree:<30} " + "  ".join(f"{k} {statistics.mean(r[k] for r in rows):,.1f}" for k in rows[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
