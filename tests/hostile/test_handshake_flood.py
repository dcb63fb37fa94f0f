"""Issue 11, row 5: 20 000 secure channel handshake Inits to /service/api in 5 s were all
answered; the portal's round trip went from 1.2 to 203 ms (median), RSS +70 MB.

Spec 3: `handshakes_in_progress` (256; an Init over it gets a plaintext refusal containing
"busy"), `handshakes_per_second` (100, overall) and `handshakes_per_second_per_source` (20,
per link), all counted in `handshakes_refused`.

The Inits here go to the relay's own /service/api, from 127.0.0.4; each Noise message 1 is 32
random bytes (a valid ephemeral key), so every accepted one costs the relay a full Response
(DH, signature) and then waits for a Finish that never comes.
"""

from __future__ import annotations

import pytest

from tests.hostile.attacker import flood_inits
from tests.hostile.conftest import Transfer, transfer_ok

pytestmark = pytest.mark.timeout(60)


def test_handshake_flood_is_rate_limited_and_the_portal_works(hostile):
    """Defaults; 2000 Inits over 20 connections as fast as they go, while an encrypted
    download runs. Each Init is either answered with a Response or refused (counted), the
    refused ones are most; accepted ones stay within the rates (100/s overall, 20/s per
    link, allowing one second of burst); the download arrives whole, and afterwards a new
    secure channel from the client to the edge through the relay is made."""
    net = hostile(secure=True)
    with Transfer(net.inlet) as transfer:
        flood = flood_inits(net.relay_port, 2000, 20, source="127.0.0.4", wait=3.0)
    refused = net.counter("relay", "handshakes_refused")
    span = flood.last_answer_after + 1.0  # seconds the relay spent on them, plus one of burst
    channel = net.ockam.run("secure-channel", "create", "--from", "client",
                            "--to", "/node/relay/service/forward_to_n3/service/api", check=False)
    facts = {
        "sent": flood.sent,
        "answered or counted": flood.responses + refused,
        "some refused": refused > 0,
        "accepted within 100/s": flood.responses <= 100 * span,
        "links over 20/s": [n for n in flood.per_connection_responses if n > 20 * span],
        "download": transfer_ok(transfer),
        "new secure channel to the edge": channel.returncode == 0,
        "new download": net.fetch_ok(seed="after-inits"),
    }
    assert facts == {"sent": 2000, "answered or counted": 2000, "some refused": True,
                     "accepted within 100/s": True, "links over 20/s": [], "download": True,
                     "new secure channel to the edge": True, "new download": True}, \
        (flood.responses, refused, round(flood.last_answer_after, 2), channel.stderr.strip(), transfer.error)


def test_handshakes_in_progress_limit(hostile):
    """handshakes_in_progress = 50 (rates out of the way), one source holding at most an
    eighth of them (6) at once: 500 Inits over 10 links (50 each) that never finish are each
    answered or refused "busy", and however the relay's reads batch them, never more than
    50 are in progress: every Response beyond 50 gave way to a newer one (evicted). (Read
    whole, 6 per link are answered: 60 Responses, 10 evicted, 440 refused.)"""
    net = hostile(relay_limits={"handshakes_in_progress": 50, "handshakes_per_second": 100000,
                                "handshakes_per_second_per_source": 100000}, client=False)
    flood = flood_inits(net.relay_port, 500, 10, source="127.0.0.4", wait=3.0)
    evicted = net.counter("relay", "handshakes_evicted")
    assert {"answered or refused": flood.responses + len(flood.refusals),
            "in progress at the end": flood.responses - evicted,
            "refusals without 'busy'": sorted({r for r in flood.refusals if "busy" not in r}),
            "relay handshakes_refused": net.counter("relay", "handshakes_refused")} == \
        {"answered or refused": 500, "in progress at the end": 50, "refusals without 'busy'": [],
         "relay handshakes_refused": len(flood.refusals)}, (flood.responses, evicted)
