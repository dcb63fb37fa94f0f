"""Identity keys at rest: `$OCKAM_HOME/identities/<name>.key` (hex Ed25519 seed, 0600,
in a 0700 directory), and `default_identity` naming the one nodes use by default."""

from __future__ import annotations

import os

from appliance.host import state
from appliance.secure.errors import IdentityError
from appliance.secure.identity import Identity

DEFAULT = "default"


def directory():
    path = state.home() / "identities"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def key_path(name: str):
    return directory() / f"{state.check_name(name)}.key"


def names() -> list[str]:
    return sorted(p.stem for p in directory().glob("*.key"))


def create(name: str) -> Identity:
    path = key_path(name)
    identity = Identity.generate()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise state.StateError(f"identity {name!r} already exists") from None
    with os.fdopen(fd, "w") as f:
        f.write(identity.seed.hex() + "\n")
    if default_name() is None:
        set_default(name)
    return identity


def load(name: str) -> Identity:
    path = key_path(name)
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise state.StateError(f"identity {name!r} does not exist (see 'ockam identity list')") from None
    except OSError as exc:
        raise state.StateError(f"cannot read identity {name!r}: {exc.strerror}") from None
    try:
        return Identity.from_seed(bytes.fromhex(text))
    except (ValueError, IdentityError):
        raise state.StateError(f"identity file {path} is corrupt (expected 64 hex digits)") from None


def default_name() -> str | None:
    try:
        name = (state.home() / "default_identity").read_text().strip()
    except FileNotFoundError:
        return None
    return name if name in names() else None


def set_default(name: str) -> None:
    if name not in names():
        raise state.StateError(f"identity {name!r} does not exist")
    (state.home() / "default_identity").write_text(name + "\n")


def load_or_create_default() -> tuple:
    """(name, identity) of the default identity, created on first use."""
    name = default_name()
    if name is None:
        name = DEFAULT
        if name not in names():
            create(name)
        set_default(name)
    return name, load(name)


def delete(name: str) -> None:
    path = key_path(name)
    if not path.exists():
        raise state.StateError(f"identity {name!r} does not exist")
    path.unlink()
    if default_name() is None:
        (state.home() / "default_identity").unlink(missing_ok=True)
