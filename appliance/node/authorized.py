"""Who may use something: a set of identifiers, or None for anyone."""

from __future__ import annotations

from appliance.node.errors import BadArgument
from appliance.secure.identity import is_identifier


def check_identifiers(identifiers) -> frozenset | None:
    """None (anyone) or a set of well-formed identifiers; a malformed one is an error."""
    if not identifiers:
        return None
    for identifier in identifiers:
        if not is_identifier(identifier):
            raise BadArgument(f"{identifier!r} is not an identifier (I followed by 40 hex digits)")
    return frozenset(identifiers)
