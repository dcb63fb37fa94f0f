"""The state directory, `$OCKAM_HOME` (default `~/.ockam`).

    $OCKAM_HOME/                 0700
      default_node               name of the default node
      nodes/<name>/              0700, one per node
        node.json                name, pid, listener address, how it was created
        api.sock                 the node's control socket (0600)
        node.log                 its log
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from appliance.errors import ApplianceError, UsageError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class StateError(ApplianceError):
    """Bad node name, missing node, unreadable state."""


def home() -> Path:
    path = Path(os.environ.get("OCKAM_HOME") or Path.home() / ".ockam")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


class BadName(StateError, UsageError):
    """A node name with characters or a length no node takes."""


def check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise BadName(f"bad node name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
    return name


def nodes_dir() -> Path:
    path = home() / "nodes"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def node_dir(name: str) -> Path:
    return nodes_dir() / check_name(name)


def socket_path(name: str) -> Path:
    return node_dir(name) / "api.sock"


def log_path(name: str) -> Path:
    return node_dir(name) / "node.log"


def node_names() -> list[str]:
    return sorted(p.name for p in nodes_dir().iterdir() if (p / "node.json").exists())


def exists(name: str) -> bool:
    return (node_dir(name) / "node.json").exists()


def read_node(name: str) -> dict:
    try:
        return json.loads((node_dir(name) / "node.json").read_text())
    except FileNotFoundError:
        raise StateError(f"node {name!r} does not exist (see 'ockam node list')") from None
    except (OSError, ValueError) as exc:
        raise StateError(f"state of node {name!r} is unreadable: {exc}") from None


def write_node(name: str, data: dict) -> None:
    directory = node_dir(name)
    directory.mkdir(mode=0o700, exist_ok=True)
    tmp = directory / "node.json.tmp"
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(directory / "node.json")


def json_store(path: Path, damaged_ok: bool = False) -> tuple:
    """(the dict in the JSON file at `path`, or an empty one; a function that saves a dict
    there atomically, readable by its owner only). `damaged_ok`: a cache, whose damaged
    content counts as empty rather than as an error."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        data = {}
    except (OSError, ValueError) as exc:
        if not damaged_ok:
            raise StateError(f"{path} is corrupt: {exc}") from None
        data = {}

    def save(value: dict) -> None:
        write_private(path, json.dumps(value))

    return data, save


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, readable and writable by its owner only: 0600
    here; on Windows an owner-only ACL on the file (set before anything is written to it)
    and on its folder (host/windows_acl.py)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        if os.name == "nt":
            from appliance.host.windows_acl import restrict_to_owner

            restrict_to_owner(str(path.parent))
            restrict_to_owner(str(tmp))
        f.write(text)
    os.replace(tmp, path)


def update_node(name: str, **fields) -> None:
    data = read_node(name)
    data.update(fields)
    write_node(name, data)


def listener_of(name: str) -> str | None:
    """The TCP listener address of a local node, for `/node/<name>` in routes."""
    try:
        return read_node(name).get("listener_address")
    except StateError:
        return None


def default_node() -> str | None:
    try:
        name = (home() / "default_node").read_text().strip()
    except FileNotFoundError:
        return None
    return name if name and exists(name) else None


def set_default_node(name: str | None) -> None:
    path = home() / "default_node"
    if name is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(name + "\n")
