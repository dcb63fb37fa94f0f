"""Hostile-peer regression tests (issue 11): real nodes, attacked on the wire."""
