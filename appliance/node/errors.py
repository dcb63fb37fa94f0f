"""Typed errors of the runtime; their text is what the CLI shows the user."""


from appliance.errors import ApplianceError, UsageError


class NodeError(ApplianceError):
    """Base of every error a node reports to its control API."""


class AddressInUse(NodeError):
    """A worker, relay or outlet already holds that address."""


class RouteError(NodeError):
    """A route could not be resolved or reached."""


class BadRoute(RouteError, UsageError):
    """Route text that is not a route: what the user wrote (exit code 2)."""


class RequestTimeout(NodeError):
    """No reply came back within the timeout."""


class BadArgument(NodeError, UsageError):
    """A request's argument that no node could take (not hex, not a number, not an identifier)."""


class NotFound(NodeError):
    """The named transport, relay, inlet or outlet does not exist."""


class ConnectionClosed(NodeError):
    """The socket behind a writer or transport is gone."""
