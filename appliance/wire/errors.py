"""Typed errors of the wire layer: every decoder raises these and nothing else."""


from appliance.errors import ApplianceError, UsageError


class WireError(ApplianceError):
    """Base of every error raised while decoding or validating wire data."""


class DecodeError(WireError):
    """Bytes that are not a valid encoding of the expected value."""


class FrameTooLarge(WireError):
    """A peer announced a frame longer than the configured maximum."""


class ProtocolVersionMismatch(WireError):
    """The peer's protocol-version byte is not ours."""


class MultiaddrError(WireError, UsageError):
    """Route text that is not a valid multiaddr (what a user wrote: exit code 2)."""


class BadRelayName(WireError, UsageError):
    """A relay name with characters or a length no node takes."""
