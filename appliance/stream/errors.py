"""Typed errors of the stream layer: what a peer did wrong on one portal stream.

Each ends that stream alone (Disconnect); the link it came over carries on."""


from appliance.errors import ApplianceError


class StreamError(ApplianceError):
    """Base of every error a portal stream's state machine raises."""


class UnexpectedMessage(StreamError):
    """A portal message that the stream's state does not allow (Payload before Pong, after End...)."""


class FlowControlError(StreamError):
    """The peer sent more than it was granted, or granted more than any window."""
