"""The `ockam` command line: it only talks to nodes through their control API (cli/client.py),
a running node's over its control socket, or a short-lived one's inside the command."""
