"""The UDP row of `make bench`: datagrams through a UDP portal (inlet -> relay <- outlet,
three node processes), plain and encrypted, next to the same clients sending directly.

    python -m bench.udp [--seconds N]

- request/response: one client sends 64 bytes and waits for the echo, for N seconds: the
  rate and the p50 round trip;
- loss at a fixed rate: 512-byte datagrams at RATES per second for N seconds each, counted
  at a sink; the highest rate with under 1 % loss (that the sender itself could keep) is what
  the path carries.
"""

from __future__ import annotations

import argparse
import functools
import json
import socket
import statistics
import threading
import time

from bench import paths

RATES = (5_000, 10_000, 20_000, 40_000, 80_000, 160_000)
SIZE = 512


class Service:
    """A UDP socket on loopback in a thread: echoes each datagram (`echo`) or only counts them."""

    def __init__(self, echo: bool):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port, self.echo, self.count, self.running = self.sock.getsockname()[1], echo, 0, True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                data, address = self.sock.recvfrom(65_535)
            except socket.timeout:
                continue
            self.count += 1
            if self.echo:
                self.sock.sendto(data, address)

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()


def request_response(port: int, seconds: float) -> dict:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(1.0)
    payload, times, lost = b"x" * 64, [], 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        sock.sendto(payload, ("127.0.0.1", port))
        try:
            sock.recv(100)
            times.append(time.monotonic() - started)
        except socket.timeout:
            lost += 1
    sock.close()
    return {"rr_per_s": round(len(times) / seconds), "rr_p50_ms": round(statistics.median(times) * 1000, 3)
            if times else None, "rr_lost": lost}


def loss_at(port: int, sink: Service, rate: int, seconds: float) -> tuple:
    """(the rate the sender kept, percent of its datagrams that did not reach the sink)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload, sent = b"y" * SIZE, 0
    before = sink.count
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        while sent < rate * elapsed:
            sock.sendto(payload, ("127.0.0.1", port))
            sent += 1
        time.sleep(0.001)
    kept = sent / (time.monotonic() - started)
    time.sleep(1.0)  # the last ones on their way
    sock.close()
    return round(kept), round(100.0 * (sent - (sink.count - before)) / sent, 2)


def measure(make_path, seconds: float) -> dict:
    row: dict = {}
    echo, sink = Service(echo=True), Service(echo=False)
    try:
        with make_path(echo.port) as path:
            request_response(path.port, 1.0)  # the route is made by the first datagrams
            row.update(request_response(path.port, seconds))
        with make_path(sink.port) as path:
            request_response(path.port, 0.5)  # makes the flow (the sink answers nothing: all are lost)
            carried = 0
            for rate in RATES:
                kept, loss = loss_at(path.port, sink, rate, seconds)
                row[f"loss_pct_at_{rate}"] = loss
                if loss >= 1.0 or kept < 0.95 * rate:  # lost, or the sender itself could not keep up
                    break
                carried = rate
            row["datagrams_per_s_under_1pct_loss"] = carried
    finally:
        echo.close()
        sink.close()
    return row


UDP_PATHS = {
    "direct": paths.direct,
    "ockam udp portal (plain)": functools.partial(paths.ockam_relay_portal, udp=True),
    "ockam udp portal (encrypted)": functools.partial(paths.ockam_relay_portal, secure=True, udp=True),
}


def run(seconds: float) -> dict:
    results = {}
    for name, make_path in UDP_PATHS.items():
        try:
            results[name] = measure(make_path, seconds)
        except Exception as exc:  # noqa: BLE001 - one path failing must not hide the others
            results[name] = {"error": str(exc)}
        print(f"  udp     {name:<28} {results[name]}", flush=True)
    return results


def summary(results: dict) -> str:
    """The UDP row as lines of text, each path's numbers side by side."""
    lines = [f"  {'path':<30} {'req/resp/s':>10} {'p50 ms':>7} {'datagrams/s < 1 % loss (512 B)':>32}"]
    for name, row in results.items():
        if "error" in row:
            lines.append(f"  {name:<30} error: {row['error']}")
            continue
        lines.append(f"  {name:<30} {row['rr_per_s']:>10} {row['rr_p50_ms']:>7} "
                     f"{row['datagrams_per_s_under_1pct_loss']:>32}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.udp")
    parser.add_argument("--seconds", type=float, default=5.0)
    opts = parser.parse_args()
    results = run(opts.seconds)
    print(summary(results))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
