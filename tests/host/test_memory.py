"""The node gives freed memory back to the system on a timer (glibc's malloc_trim)."""

import sys

import pytest

from appliance.host import memory
from tests.helpers import wait_until


def test_the_trimmer_trims_on_its_timer_until_stopped():
    calls = []
    trimmer = memory.MemoryTrimmer(interval=0.02, trim=calls.append)
    wait_until(lambda: len(calls) >= 2, timeout=2, what="two trims")
    assert trimmer.running
    trimmer.stop()
    assert not trimmer.running and set(calls) == {0}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_glibc_malloc_trim_is_found_and_callable():
    trim = memory._malloc_trim()
    assert trim is not None and trim(0) in (0, 1)
