"""Issue 11, row 3: 300 connections each sending a 1 MiB - 1 partial frame took the relay from
28 to 338 MB of RSS, kept after they closed: nothing timed incomplete frames out.

Spec 3: `frame_deadline` (a frame started but not completed within it closes that connection,
`frames_timed_out`) and `incomplete_frame_bytes` (node-wide bytes of partial frames; over it
the connection with the oldest partial frame is closed, `incomplete_frames_closed`).
"""

from __future__ import annotations

import time

import pytest

from appliance.wire.address import Address
from appliance.wire.framing import DEFAULT_MAX_FRAME
from appliance.wire.transport import encode_frame
from tests.hostile.attacker import Peer, close_all, wait_closed
from tests.hostile.conftest import Transfer, transfer_ok

pytestmark = pytest.mark.timeout(60)

DEADLINE = 2.0
SLACK = 3.0
EARLY = 0.25  # timers in another process may fire this much before our clock says


def test_partial_frames_time_out(hostile, attackers):
    """frame_deadline = 2: 50 connections from 127.0.0.6 each send a frame header claiming
    1 MiB and 1 MiB - 1 bytes of it. Each is closed between 2 s and 2 + 3 s after its frame
    started; a frame sent slowly but completed in time is routed and its connection stays."""
    net = hostile(relay_limits={"frame_deadline": DEADLINE})
    slow = attackers(net.attacker("127.0.0.6").start_reader())
    peers, started = [], {}
    with Transfer(net.inlet) as transfer:
        try:
            for _ in range(50):
                peer = Peer(net.relay_port, "127.0.0.6")
                peers.append(peer)
                started[peer] = time.monotonic()
                peer.send_partial(DEFAULT_MAX_FRAME, DEFAULT_MAX_FRAME - 1)
            # a legitimate slow sender: one echo frame in three pieces over ~1 s
            frame = encode_frame((Address.local("echo"),), (Address.local("slow"),), b"in time")
            for piece in (frame[:3], frame[3:10], frame[10:]):
                slow.send_raw(piece)
                slow.eof.wait(0.5)  # pacing; returns early only if the node closed it
            echoed = slow.wait_for(lambda m: m.payload == b"in time", timeout=2.0)
            closed = wait_closed(peers, timeout=DEADLINE + SLACK + 1.0)
        finally:
            close_all(peers)
    lifetimes = sorted(round(p.eof_at - started[p], 2) for p in closed)
    facts = {
        "closed": len(closed),
        "closed too early": [t for t in lifetimes if t < DEADLINE - EARLY],
        "closed too late": [t for t in lifetimes if t > DEADLINE + SLACK],
        "relay frames_timed_out": net.counter("relay", "frames_timed_out"),
        "slow but complete frame echoed": bool(echoed),
        "slow sender still connected": not slow.eof.is_set(),
        "download": transfer_ok(transfer),
        "edge registrations": net.registrations(),
    }
    assert facts == {"closed": 50, "closed too early": [], "closed too late": [], "relay frames_timed_out": 50,
                     "slow but complete frame echoed": True, "slow sender still connected": True,
                     "download": True, "edge registrations": 1}, f"download: {transfer.error or 'ok'}"


BUDGET = 8 * (1 << 20) + (1 << 19)  # 8.5 MiB: room for 8 partial frames of ~1 MiB, not 9


def test_incomplete_frame_bytes_budget_closes_the_oldest(hostile):
    """incomplete_frame_bytes = 8.5 MiB (frame_deadline 30 s, out of the way): 20 connections
    from 127.0.0.7, one after the other, each leave a ~1 MiB frame incomplete. Whichever way
    the node counts a partial frame (bytes received, with or without the header, or the
    length claimed) only 8 fit: at least 12 are closed (exactly 12 when the relay reads each
    frame whole before the next; under load it may read the newer ones' first bytes before the
    older ones' last, and a closed partial frame then frees less than 1 MiB), and the counter
    says so."""
    net = hostile(relay_limits={"incomplete_frame_bytes": BUDGET, "frame_deadline": 30}, client=False)
    peers = []
    try:
        for _ in range(20):
            peer = Peer(net.relay_port, "127.0.0.7")
            peers.append(peer)
            peer.send_partial(DEFAULT_MAX_FRAME, DEFAULT_MAX_FRAME - 1)
        wait_closed(peers, timeout=3.0)
        closed = [i for i, p in enumerate(peers) if p.eof.is_set()]
        facts = {"at most 8 open": len(closed) >= 12,
                 "relay incomplete_frames_closed": net.counter("relay", "incomplete_frames_closed"),
                 "edge registrations": net.registrations()}
        assert facts == {"at most 8 open": True,
                         "relay incomplete_frames_closed": len(closed), "edge registrations": 1}, closed
    finally:
        close_all(peers)
