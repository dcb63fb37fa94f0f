"""How results are shown: human text on a terminal, the bare value in pipes, or JSON."""

from __future__ import annotations

import json
import sys
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
