"""Route probes: are the hops to a far node still there?

A probe goes to `route + [echo]` with the payload `ff "probe" 00 | token (8 bytes)`; `echo`
returns it unchanged, and so does a TCP outlet probed at its own address (an inlet asks
whether its outlet is there; an outlet that refuses the prober answers `unreachable`). A
node that drops a probe because it has no worker for the next hop answers
`ff "unreachable" 00 | token` to the probe's return route, with an empty return route of
its own (nothing ever answers that). Nothing else is answered when dropped.
"""

from __future__ import annotations

PROBE = b"\xffprobe\x00"
UNREACHABLE = b"\xffunreachable\x00"
TOKEN_SIZE = 8


def encode_probe(token: bytes) -> bytes:
    return PROBE + token


def is_probe(payload: bytes) -> bool:
    return len(payload) == len(PROBE) + TOKEN_SIZE and payload[:len(PROBE)] == PROBE


def unreachable_answer(payload: bytes) -> bytes | None:
    """The answer for a dropped message, if it is a probe."""
    if is_probe(payload):
        return UNREACHABLE + payload[len(PROBE):]
    return None


def decode_answer(payload: bytes) -> tuple | None:
    """(reachable, token) for an echoed probe or an unreachable answer, else None."""
    for prefix, reachable in ((PROBE, True), (UNREACHABLE, False)):
        if len(payload) == len(prefix) + TOKEN_SIZE and payload[:len(prefix)] == prefix:
            return reachable, bytes(payload[len(prefix):])
    return None
