"""The node gives freed memory back to the system on a timer (glibc's malloc_trim)."""

import subprocess
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


MMAPPED_AFTER_BIG_ALLOCATION = r"""
import ctypes, sys
from appliance.host import memory
class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = Mallinfo2
tuned = sys.argv[1] == "tuned" and memory.tune_allocator()
before = mallinfo2().hblks
buffer = bytearray(512 * 1024)  # a receive buffer's size, as a portal's bulk reads make
print(tuned, mallinfo2().hblks - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
@pytest.mark.parametrize("mode,expected", [("default", "False 1"), ("tuned", "True 0")])
def test_tuned_allocator_keeps_large_buffers_in_the_heap(mode, expected):
    """glibc maps a 512 KiB buffer of its own (page faults on every use) unless tuned."""
    out = subprocess.run([sys.executable, "-c", MMAPPED_AFTER_BIG_ALLOCATION, mode], capture_output=True, text=True,
                         check=True, timeout=30).stdout.split()
    assert " ".join(out) == expected
