"""What an operator sees of a node: conditions of its relays and inlets, and metrics in the
Prometheus text format. Pure: no I/O, clocks injected."""
