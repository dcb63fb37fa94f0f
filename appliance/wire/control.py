"""The control API's handshake over loopback TCP (node/control/api.py, cli/client.py), where any local
user may connect and a stale port file may name somebody else's listener:

    client -> node   nonce (32 hex digits) \\n
    node -> client   proof \\n         HMAC-SHA256(token, "ockam control " + nonce), hex
    client -> node   token (64 hex digits) \\n     only once the proof is right
    client -> node   request \\n  ...   as over the Unix socket

So the node proves it holds the token before the CLI shows it anything, and a stranger who
connects is refused after one short line, before the node reads a request."""

from __future__ import annotations

import hashlib
import hmac
import os

NONCE_HEX = 32
TOKEN_HEX = 64
MAX_LINE = 80  # the first lines are short: nothing longer is read before the token is checked


def nonce() -> str:
    return os.urandom(NONCE_HEX // 2).hex()


def proof(token: str, nonce_hex: str) -> str:
    return hmac.new(bytes.fromhex(token), b"ockam control " + nonce_hex.encode(), hashlib.sha256).hexdigest()


def is_hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdef" for c in text)
