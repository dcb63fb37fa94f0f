"""The Prometheus text exposition format (version 0.0.4), written out from plain values.

    # HELP <name> <help, with \\ and newline escaped>
    # TYPE <name> counter|gauge
    <name>{<label>="<value, with \\, " and newline escaped>",...} <value>

A family is written only with its samples; one with none is left out (Prometheus reads an
absent series as "no data", which is what it is). Names are checked, so a typo in a metric's
name fails a test, not a scrape.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
KINDS = ("counter", "gauge")


@dataclass
class Family:
    name: str
    kind: str
    help: str
    samples: list = field(default_factory=list)  # (labels: dict, value)

    def __post_init__(self):
        if not _NAME.match(self.name) or self.kind not in KINDS:
            raise ValueError(f"bad metric family {self.name!r} ({self.kind})")
        if (self.kind == "counter") != self.name.endswith("_total"):
            raise ValueError(f"{self.name}: counters, and only counters, end in _total")

    def add(self, value, **labels) -> "Family":
        for label in labels:
            if not _LABEL.match(label) or label.startswith("__"):
                raise ValueError(f"{self.name}: bad label name {label!r}")
        self.samples.append((labels, value))
        return self


def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _label_value(value) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def render(families) -> bytes:
    lines = []
    for family in families:
        if not family.samples:
            continue
        lines.append(f"# HELP {family.name} {_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for labels, value in family.samples:
            if labels:
                inner = ",".join(f'{k}="{_label_value(v)}"' for k, v in labels.items())
                lines.append(f"{family.name}{{{inner}}} {_number(value)}")
            else:
                lines.append(f"{family.name} {_number(value)}")
    return ("\n".join(lines) + "\n").encode() if lines else b""
