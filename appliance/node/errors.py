"""Typed errors of the runtime; their text is what the CLI shows the user."""


class NodeError(Exception):
    """Base of every error a node reports to its control API."""


class AddressInUse(NodeError):
    """A worker, relay or outlet already holds that address."""


class RouteError(NodeError):
    """A route could not be resolved or reached."""


class RequestTimeout(NodeError):
    """No reply came back within the timeout."""


class NotFound(NodeError):
    """The named transport, relay, inlet or outlet does not exist."""


class ConnectionClosed(NodeError):
    """The socket behind a writer or transport is gone."""
