"""Projects at rest: what member nodes know (`$OCKAM_HOME/projects/<name>.json`) and the
project node's member list (`nodes/<node>/members.json`, 0600)."""

from __future__ import annotations

import base64
import json

from appliance.host import state
from appliance.node.project.info import ProjectError, ProjectInfo

TICKET_PREFIX = "ockam-ticket:"


def directory():
    path = state.home() / "projects"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def save(info: ProjectInfo) -> None:
    (directory() / f"{state.check_name(info.name)}.json").write_text(json.dumps(info.to_json(), indent=2))


def load_all() -> list[ProjectInfo]:
    projects = []
    for path in sorted(directory().glob("*.json")):
        try:
            projects.append(ProjectInfo.from_json(json.loads(path.read_text())))
        except (ValueError, ProjectError) as exc:
            raise state.StateError(f"project file {path} is unreadable: {exc}") from None
    return projects


def read_project_file(path: str) -> ProjectInfo:
    try:
        with open(path) as f:
            return ProjectInfo.from_json(json.load(f))
    except OSError as exc:
        raise state.StateError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise state.StateError(f"{path} is not JSON: {exc}") from None


def members_store(node: str) -> tuple:
    """(members dict, save function) for a project node."""
    return state.json_store(state.node_dir(node) / "members.json")


def encode_ticket(ticket: dict) -> str:
    return TICKET_PREFIX + base64.urlsafe_b64encode(json.dumps(ticket).encode()).decode().rstrip("=")


def decode_ticket(text: str) -> dict:
    if not text.startswith(TICKET_PREFIX):
        raise state.StateError("not an enrollment ticket (it starts with 'ockam-ticket:')")
    body = text[len(TICKET_PREFIX):]
    try:
        ticket = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        ProjectInfo.from_json(ticket["project"])
        str(ticket["token"])
    except (ValueError, KeyError, TypeError, ProjectError) as exc:
        raise state.StateError(f"the enrollment ticket is damaged: {exc}") from None
    return ticket
