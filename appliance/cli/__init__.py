"""The `ockam` command line: it only talks to nodes through their control API."""
