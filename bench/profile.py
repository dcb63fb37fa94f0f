"""Where the three nodes' CPU goes, by our own functions: `make bench-profile`

    python -m bench.profile [--plain] [--clients N] [--seconds S] [--top K]

Runs redis-benchmark PING through the portal (inlet, relay, outlet: `make bench`'s path) and
records each node with `perf record --call-graph dwarf`. py-spy cannot see into the compiled
build (its functions are C), perf can: each sample is charged to the innermost of our
compiled functions on its stack (mypyc names them `CPyDef_<module>___<Class>___<method>`),
with the CPython runtime it called (allocation, dict lookups, reference counting) and apart
from the kernel time under it (system calls, loopback TCP, wake-ups). Samples with none of
our functions on the stack are the event loop's (gevent, libev; epoll's own kernel time is
counted as the kernel's). On the pure build every sample is the interpreter's: profile
that one with py-spy.

Prints, per node, the share of its samples in the kernel, in the event loop and in each
part of the protocol, then the functions that cost most over the three nodes.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import paths, targets

# what a compiled function's module says it is part of (mypyc keeps enough of the module
# path to be unique: `secure___channel`, `channels___channel`, `wire___portal`)
PARTS = (
    ("channel", ("aead___", "suites___", "secure___channel___", "secure_channel___", "channels___channel___")),
    ("portal", ("portals___", "state___", "credit___", "wire___portal___")),
    ("routing", ("node___", "address___", "relays___", "relay___", "message___", "message_____", "worker___",
                 "links___", "shortcuts___")),
    ("transport", ("tcp___", "framing___", "transport___", "writer___", "sockets___", "bare___")),
)
KERNEL, LOOP = "kernel", "event loop"


def part_of(function: str) -> str:
    for part, prefixes in PARTS:
        if function.startswith(prefixes):
            return part
    return "other"


def readable(function: str) -> str:
    """`channels___channel___ChannelEnd____decrypt` -> `channels.channel.ChannelEnd._decrypt`."""
    return ".".join(function.split("___"))


def charge(stack: list) -> tuple:
    """(part, function) a sample is charged to; its frames are (symbol, dso), leaf first."""
    ours = next((symbol[len("CPyDef_"):] for symbol, _ in stack if symbol.startswith("CPyDef_")), None)
    in_kernel = "[kernel" in stack[0][1]
    if ours is None:
        return (KERNEL if in_kernel else LOOP), None
    return (KERNEL if in_kernel else part_of(ours)), ours


def samples(script_output):
    """The stacks of `perf script` (a header line, then one indented line per frame)."""
    stack: list = []
    for line in script_output:
        if not line.strip():
            if stack:
                yield stack
            stack = []
        elif line[0] in " \t":
            fields = line.split(None, 2)
            if len(fields) >= 2:
                stack.append((fields[1].split("+0x")[0], fields[2] if len(fields) > 2 else ""))
    if stack:
        yield stack


def record(pids: dict, seconds: float, folder: Path) -> dict:
    """perf.data of each node, recorded at the same time."""
    recorders = {}
    try:
        for name, pid in pids.items():
            recorders[name] = subprocess.Popen(
                ["perf", "record", "-F", "499", "--call-graph", "dwarf,16384", "-o", str(folder / f"{name}.data"),
                 "-p", str(pid), "--", "sleep", str(seconds)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for name, recorder in recorders.items():
            _, err = recorder.communicate(timeout=seconds + 120)
            if recorder.returncode != 0:
                last = err.strip().splitlines()[-1] if err.strip() else f"exit status {recorder.returncode}"
                raise RuntimeError(f"perf record failed for the {name} node: {last}")
    finally:
        for recorder in recorders.values():
            if recorder.poll() is None:
                recorder.kill()
                recorder.wait()
    return {name: folder / f"{name}.data" for name in pids}


def tally(data: Path) -> tuple:
    """(samples, Counter of parts, Counter of (part, function))."""
    script = subprocess.Popen(["perf", "script", "-i", str(data)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, errors="replace")
    parts, functions, total = collections.Counter(), collections.Counter(), 0
    for stack in samples(script.stdout):
        part, function = charge(stack)
        total += 1
        parts[part] += 1
        if function is not None:
            functions[(part, function)] += 1
    err = script.stderr.read()
    if script.wait() != 0:
        raise RuntimeError(f"perf script failed on {data.name}: {err.strip().splitlines()[-1] if err.strip() else '?'}")
    if not total:
        raise RuntimeError(f"perf recorded no samples of {data.stem} (allowed? see /proc/sys/kernel/perf_event_paranoid)")
    return total, parts, functions


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.profile")
    parser.add_argument("--plain", action="store_true", help="the plain portal instead of the encrypted one")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--top", type=int, default=25)
    opts = parser.parse_args()
    for tool in ("perf", "redis-benchmark", "redis-server"):
        if shutil.which(tool) is None:
            print(f"bench.profile: {tool} is not installed (perf: apt install linux-perf)", file=sys.stderr)
            return 2
    folder = Path(tempfile.mkdtemp(prefix="ockam-profile-"))
    try:
        return profile(opts, folder)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"bench.profile: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def profile(opts: argparse.Namespace, folder: Path) -> int:
    """Drive the load, record the nodes, print what their samples were spent on."""
    with targets.redis() as port, paths.ockam_relay_portal(port, secure=not opts.plain) as path:
        load = subprocess.Popen(["redis-benchmark", "-h", "127.0.0.1", "-p", str(path.port), "-t", "ping_inline",
                                 "-c", str(opts.clients), "-n", "100000000", "-q"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(1.0)  # every client connected and its portal stream open
            recorded = record({name.split()[0]: pid for name, pid in path.pids.items()}, opts.seconds, folder)
        finally:
            load.kill()
            load.wait()
    everything: collections.Counter = collections.Counter()
    grand = 0
    mode = "plain" if opts.plain else "encrypted"
    print(f"redis PING, {opts.clients} clients, {mode} portal: share of each node's samples")
    for name, data in recorded.items():
        total, parts, functions = tally(data)
        everything.update(functions)
        grand += total
        shares = "  ".join(f"{part} {100 * count / total:.0f} %" for part, count in parts.most_common())
        print(f"  {name:<7} {total:>6} samples  {shares}")
    if not everything:
        print("no compiled function was seen: this is the pure build (profile it with py-spy)")
        return 0
    print(f"the {opts.top} compiled functions that cost most (share of the three nodes' samples; "
          "kernel: the kernel's time under that function):")
    for (part, function), count in everything.most_common(opts.top):
        print(f"  {100 * count / grand:5.1f} %  {part:<9} {readable(function)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
