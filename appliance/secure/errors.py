"""Typed errors of the secure layer."""


from appliance.errors import ApplianceError, UsageError


class SecureError(ApplianceError):
    """Base of every error of the secure layer."""


class HandshakeError(SecureError):
    """A handshake message that is malformed, fails to decrypt, or proves the wrong thing."""


class HandshakeRefused(HandshakeError):
    """The peer said no (its refusal's reason follows): nothing to answer it."""


class PeerNotAuthorized(HandshakeError):
    """The peer proved an identity that is not among the authorized ones."""


class DecryptError(SecureError):
    """Channel data that is truncated or fails authentication."""


class ReplayError(SecureError):
    """Channel data whose nonce was already seen or is too old for the replay window."""


class UnknownSuite(SecureError, UsageError):
    """A cipher suite we do not implement (or that this CPU cannot run)."""


class IdentityError(SecureError):
    """A missing, corrupt or unusable identity key."""
