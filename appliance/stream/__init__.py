"""Portal stream protocol logic without I/O: states, transitions and flow control."""
