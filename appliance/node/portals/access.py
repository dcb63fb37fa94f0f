"""Who an outlet serves: identities it authorizes, attributes their project credentials
must show. One rule for TCP and UDP outlets."""

from __future__ import annotations


def access_refusal(peer: str | None, authorized=None, allow: dict | None = None, attribute_sets=None) -> str | None:
    """Why `peer` may not use the outlet, or None when it may."""
    if authorized and peer not in authorized:
        return "not authorized"
    if allow:
        proved = attribute_sets(peer) if attribute_sets else []
        if not proved:
            return "no valid project credential"
        if not any(all(attributes.get(k) == v for k, v in allow.items()) for attributes in proved):
            return f"credential lacks {allow}"
    return None
