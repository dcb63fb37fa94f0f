"""How results are shown: human text on a terminal, the bare value in pipes, or JSON."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass


@dataclass
class Output:
    format: str = "plain"  # plain | json
    quiet: bool = False
    verbose: int = 0

    def result(self, value, human: str | None = None, data=None) -> None:
        """Print one command's result.

        `value` is the machine-usable text (a route, a name) printed alone when stdout
        is not a terminal; `human` is what a person at a terminal sees; `data` is the
        JSON form (defaults to value)."""
        if self.format == "json":
            print(json.dumps(value if data is None else data, indent=2))
        elif self.quiet:
            return
        elif human is not None and sys.stdout.isatty():
            print(human)
        elif value is not None:
            print(value)


def duration(seconds: float) -> str:
    """12s, 5m03s, 2h10m, 3d04h: how long, at a glance."""
    seconds = max(0, int(seconds))
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if seconds >= size:
            return f"{seconds // size}{unit}{(seconds % size) // sub_size:02d}{sub}"
    return f"{seconds}s"


def condition(item: dict, now: float | None = None) -> str:
    """`up 5m03s`: a relay's or an inlet's state and for how long (an incoming relay, one
    registered here, has no history: `up`)."""
    if item.get("since") is None:
        return item["state"]
    return f"{item['state']} {duration((time.time() if now is None else now) - item['since'])}"


def last_error(item: dict, now: float | None = None) -> str:
    """`<error> (3m10s ago)`, or `-`."""
    if not item.get("last_error"):
        return "-"
    now = time.time() if now is None else now
    return f"{item['last_error']} ({duration(now - item['last_error_at'])} ago)"


def warn(message: str) -> None:
    print(f"Warning: {message}", file=sys.stderr)


def table(headers: list[str], rows: list[list[str]]) -> str:
    """An ASCII table with +---+ borders, as Ockam's CLI prints them."""
    widths = [max([len(h)] + [len(str(r[i])) for r in rows]) for i, h in enumerate(headers)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(cells):
        return "|" + "|".join(f" {str(c):<{w}} " for c, w in zip(cells, widths)) + "|"

    out = [rule, line(headers), rule]
    out += [line(r) for r in rows]
    if rows:
        out.append(rule)
    return "\n".join(out)
