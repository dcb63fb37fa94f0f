"""Buffer: what a codec or a socket takes as bytes: bytes, bytearray or memoryview.

Any to the type checkers, so that a compiled build checks nothing at run time for it."""

from typing import Any

Buffer = Any
