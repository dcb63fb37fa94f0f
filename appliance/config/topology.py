"""A node's topology from TOML: what to start, validated with file:line:key errors.

    [node]            name, identity, tcp_listener_address, relay_authorized (identifiers),
                      link_timeout, relay (offer forwarding_service), relay_grace (seconds),
                      metrics_address (HOST:PORT or PORT: /metrics, /health, /ready over HTTP)
    [limits]          budgets on what peers can make the node hold (appliance/limits/budgets.py)
    [[tcp_connections]] to
    [[secure_channel_listeners]] address, authorized
    [[relays]]        name, at (a route or a list: the name is registered at each), authorized
    [[outlets]]       to, from, alias, authorized, proxy_protocol ("v1" or "v2")
    [[inlets]]        from, to (a route or a list: failover in that order), alias, authorized,
                      balance (spread new connections over the routes that answer)
    [[udp_outlets]]   to, from, alias, authorized
    [[udp_inlets]]    from, to (a route or a list: each new flow takes the first that resolves),
                      alias, authorized
    [project]         name, address (HOST:PORT members reach), credential_ttl (seconds)
    [membership]      project (path of a project.json), enrollment_ticket, relay_box (bool: one
                      more relay box of the project, enrolled with a `project ticket --relay-box`)
    [demo]            http (a built-in HTTP responder, for the one-box demo)

String values may use ${VAR} and ${VAR:-default} (the default when VAR is unset or empty);
every variable that is unset and has no default is reported at once, each with its line.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from dataclasses import dataclass, field

from appliance.errors import UsageError
from appliance.limits import budgets
from appliance.secure.identity import is_identifier
from appliance.wire import multiaddr, relay
from appliance.wire.errors import WireError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib


class ConfigError(UsageError):
    """One problem in a topology file, as `file:line: key: message`."""

    def __init__(self, path: str, line: int | None, key: str, message: str):
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


@dataclass(frozen=True)
class RelaySpec:
    name: str
    at: tuple  # routes to the relay nodes: the name is registered at each
    authorized: tuple = ()  # identifiers the relay node must authenticate as (with /secure in `at`)


@dataclass(frozen=True)
class OutletSpec:
    to: str
    address: str = "/service/outlet"
    alias: str | None = None
    authorized: tuple = ()
    proxy_protocol: str | None = None


@dataclass(frozen=True)
class InletSpec:
    bind: str
    to: tuple  # routes to the outlet: failover in this order, or balance
    alias: str | None = None
    authorized: tuple = ()
    balance: bool = False


@dataclass(frozen=True)
class UdpOutletSpec:
    to: str
    address: str = "/service/udp-outlet"
    alias: str | None = None
    authorized: tuple = ()


@dataclass(frozen=True)
class UdpInletSpec:
    bind: str
    to: tuple  # routes to the UDP outlet: each new flow takes the first that resolves
    alias: str | None = None
    authorized: tuple = ()


@dataclass(frozen=True)
class ListenerSpec:
    address: str
    authorized: tuple = ()


@dataclass(frozen=True)
class Topology:
    name: str | None = None
    identity: str | None = None  # an identity name under $OCKAM_HOME/identities
    tcp_listener_address: str = "127.0.0.1:0"
    relay_authorized: tuple = ()  # identifiers allowed to create relays here (empty: anyone)
    link_timeout: float = 15.0  # seconds of silence after which a node-to-node link is dead
    relay: bool | None = None  # offer forwarding_service to peers; None: only a project node does
    relay_grace: float = 30.0  # seconds a lost relay's name is kept for its registrant
    metrics_address: str | None = None  # the HTTP status endpoint (node/control/status_server.py); None: off
    limits: tuple = ()  # (key, value) overrides of appliance.limits.budgets.Limits
    tcp_connections: tuple = ()
    secure_channel_listeners: tuple = ()
    relays: tuple = ()
    outlets: tuple = ()
    inlets: tuple = ()
    udp_outlets: tuple = ()
    udp_inlets: tuple = ()
    demo_http: str | None = None
    project: tuple = ()  # (name, address or "", credential_ttl) when this node is a project node
    member_of: str | None = None  # path of the project.json of the project this node belongs to
    enrollment_ticket: str | None = None
    relay_box: bool = False  # members of the project it belongs to may register relays here
    source: str = field(default="", compare=False)


def _bind_address(value: str) -> None:
    multiaddr.parse_hostport(value, allow_zero=True)


def _target_address(value: str) -> None:
    if value.startswith("/"):
        multiaddr.parse(value)
    else:
        multiaddr.parse_hostport(value)


def _identifiers(values: list) -> None:
    for value in values:
        if not isinstance(value, str) or not is_identifier(value):
            raise ValueError(f"{value!r} is not an identifier (I followed by 40 hex digits)")


DEFAULT_CREDENTIAL_TTL = 600  # seconds: members refresh at half; a removed one lapses soon


def _relative_to(config_path: str, path: str) -> str:
    """A path in a topology file is relative to the file."""
    return path if os.path.isabs(path) or config_path.startswith("<") else \
        os.path.join(os.path.dirname(os.path.abspath(config_path)), path)


def _positive(value: int) -> None:
    if value <= 0:
        raise ValueError("must be a positive number of seconds")


def _proxy_protocol(value: str) -> None:
    if value not in ("v1", "v2"):
        raise ValueError("use v1 or v2")


def _tuple(value) -> tuple:
    """A value written as one string or as a list of them."""
    return (value,) if isinstance(value, str) else tuple(value)


def _routes(value) -> None:
    """A route, or a non-empty list of them."""
    values = [value] if isinstance(value, str) else value
    if not values or not all(isinstance(v, str) for v in values):
        raise ValueError("expected a route or a list of routes")
    for v in values:
        multiaddr.parse(v)


def _link_timeout(value) -> None:
    if isinstance(value, bool) or not 3 <= value <= 3600:
        raise ValueError("must be a number of seconds from 3 to 3600")


def _relay_grace(value) -> None:
    if isinstance(value, bool) or not 0 <= value <= 3600:
        raise ValueError("must be a number of seconds from 0 to 3600")


def _node_name(value: str) -> None:
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", value):
        raise ValueError("use letters, digits, '.', '_' or '-' (at most 64)")


# section -> (is an array of tables, {key: (type, required, validator)})
SCHEMA = {
    "node": (False, {"name": (str, False, _node_name), "identity": (str, False, _node_name),
                      "tcp_listener_address": (str, False, _bind_address),
                      "relay_authorized": (list, False, _identifiers),
                      "link_timeout": ((int, float), False, _link_timeout),
                      "relay": (bool, False, None),
                      "relay_grace": ((int, float), False, _relay_grace),
                      "metrics_address": (str, False, multiaddr.parse_bind)}),
    "limits": (False, {key: ((int, float), False, lambda value, key=key: budgets.check(key, value))
                       for key in budgets.KEYS}),
    "tcp_connections": (True, {"to": (str, True, _target_address)}),
    "secure_channel_listeners": (True, {"address": (str, True, multiaddr.parse),
                                        "authorized": (list, False, _identifiers)}),
    "relays": (True, {"name": (str, True, relay.validate_name), "at": ((str, list), True, _routes),
                      "authorized": (list, False, _identifiers)}),
    "outlets": (True, {"to": (str, True, multiaddr.parse_hostport), "from": (str, False, multiaddr.parse),
                       "alias": (str, False, None), "authorized": (list, False, _identifiers),
                       "proxy_protocol": (str, False, _proxy_protocol)}),
    "inlets": (True, {"from": (str, True, _bind_address), "to": ((str, list), True, _routes),
                      "alias": (str, False, None), "authorized": (list, False, _identifiers),
                      "balance": (bool, False, None)}),
    "udp_outlets": (True, {"to": (str, True, multiaddr.parse_hostport), "from": (str, False, multiaddr.parse),
                           "alias": (str, False, None), "authorized": (list, False, _identifiers)}),
    "udp_inlets": (True, {"from": (str, True, _bind_address), "to": ((str, list), True, _routes),
                          "alias": (str, False, None), "authorized": (list, False, _identifiers)}),
    "demo": (False, {"http": (str, False, _bind_address)}),
    "project": (False, {"name": (str, True, _node_name), "address": (str, False, multiaddr.parse_hostport),
                        "credential_ttl": (int, False, _positive)}),
    "membership": (False, {"project": (str, True, None), "enrollment_ticket": (str, False, None),
                           "relay_box": (bool, False, None)}),
}

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NESTED = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-[^}]*\$\{")  # ${A:-${B}}
_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.-]+)\s*\]\]?")
_KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")


def _line_index(text: str) -> dict:
    """Where each (section, table index, key) is written, for error messages."""
    lines: dict = {}
    counts: dict = {}
    section, index = None, 0
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header:
            section = header.group(1)
            index = counts.get(section, -1) + 1 if line.lstrip().startswith("[[") else 0
            counts[section] = index
            lines.setdefault((section, index, None), number)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault((section, index, key.group(1)), number)
    return lines


def _hint(name: str, choices) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def node_name(text: str) -> str | None:
    """`[node] name` as written (no variables filled in), or None; the file need not be valid."""
    try:
        name = tomllib.loads(text).get("node", {}).get("name")
    except (tomllib.TOMLDecodeError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def variables(text: str) -> list:
    """The environment variables the topology's values name (not its comments), each once."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return []
    names: dict = {}

    def visit(value) -> None:
        if isinstance(value, str):
            names.update(dict.fromkeys(match.group(1) for match in _VAR.finditer(value)))
        elif isinstance(value, dict):
            for item in value.values():
                visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)

    visit(data)
    return list(names)


def variable_sources(text: str, layers) -> dict:
    """Where each variable the topology uses takes its value from, as `interpolate` reads the
    first of `layers` ((label, environ) pairs) that sets it: that layer's label, or "its
    default" when the value there is empty (or nowhere set) and the file gives one."""
    sources = {}
    for name in variables(text):
        found = next(((label, environ[name]) for label, environ in layers if name in environ), None)
        has_default = re.search(r"\$\{" + re.escape(name) + r":-", text) is not None
        if found is not None and (found[1] or not has_default):
            sources[name] = found[0]
        else:
            sources[name] = "its default" if has_default else "unset"
    return sources


def interpolate(value: str, environ) -> tuple:
    """(`value` with its ${VAR} and ${VAR:-default} filled in from `environ`, the names of
    the variables that have no value there)."""
    missing = []

    def substitute(match):
        name, default = match.group(1), match.group(2)
        if environ.get(name):
            return environ[name]
        if default is not None:
            return default
        if name not in environ:
            missing.append(name)
        return ""  # unset (reported), or set but empty: empty, as a shell does

    return _VAR.sub(substitute, value), missing


def load(path: str, environ=None) -> Topology:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ConfigError(path, None, "", f"cannot read: {exc.strerror or exc}") from None
    return parse(raw.decode("utf-8", "replace"), path, os.environ if environ is None else environ)


def parse(text: str, path: str = "<topology>", environ=None) -> Topology:
    environ = os.environ if environ is None else environ
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        raise ConfigError(path, int(match.group(1)) if match else None, "",
                          f"invalid TOML: {str(exc).split(' (at')[0]}") from None
    lines = _line_index(text)
    sections: dict = {}
    unset: list = []  # (line, key, variable) of every ${VAR} without a value: reported together
    for section, value in data.items():
        if section not in SCHEMA:
            raise ConfigError(path, lines.get((section, 0, None)), section,
                              f"unknown section{_hint(section, SCHEMA)}")
        is_array, keys = SCHEMA[section]
        tables = value if is_array else [value]
        if is_array and not (isinstance(value, list) and all(isinstance(t, dict) for t in value)):
            raise ConfigError(path, lines.get((section, 0, None)), section, f"write it as [[{section}]] tables")
        if not is_array and not isinstance(value, dict):
            raise ConfigError(path, None, section, f"write it as a [{section}] table")
        sections[section] = [_check_table(path, lines, section, i, t, keys, environ, unset)
                             for i, t in enumerate(tables)]
    if len(unset) == 1:
        line, key, name = unset[0]
        raise ConfigError(path, line, key, f"environment variable {name} is not set")
    if unset:
        where = ", ".join(f"{name} (line {line})" for line, _key, name in unset)
        raise ConfigError(path, unset[0][0], "", f"environment variables are not set: {where}")

    node = (sections.get("node") or [{}])[0]
    limits = (sections.get("limits") or [{}])[0]
    demo = (sections.get("demo") or [{}])[0]
    project = (sections.get("project") or [{}])[0]
    membership = (sections.get("membership") or [{}])[0]
    return Topology(
        name=node.get("name"),
        identity=node.get("identity"),
        tcp_listener_address=node.get("tcp_listener_address", "127.0.0.1:0"),
        relay_authorized=tuple(node.get("relay_authorized", ())),
        link_timeout=float(node.get("link_timeout", 15.0)),
        # a node given a listener address is there to be reached: a relay, unless it says not
        relay=node.get("relay", True if "tcp_listener_address" in node else None),
        relay_grace=float(node.get("relay_grace", 30.0)),
        metrics_address=node.get("metrics_address"),
        limits=tuple(sorted(limits.items())),
        tcp_connections=tuple(t["to"] for t in sections.get("tcp_connections", [])),
        secure_channel_listeners=tuple(ListenerSpec(t["address"], tuple(t.get("authorized", ())))
                                       for t in sections.get("secure_channel_listeners", [])),
        relays=tuple(RelaySpec(t["name"], _tuple(t["at"]), tuple(t.get("authorized", ())))
                     for t in sections.get("relays", [])),
        outlets=tuple(OutletSpec(t["to"], t.get("from", "/service/outlet"), t.get("alias"),
                                 tuple(t.get("authorized", ())), t.get("proxy_protocol"))
                      for t in sections.get("outlets", [])),
        inlets=tuple(InletSpec(t["from"], _tuple(t["to"]), t.get("alias"), tuple(t.get("authorized", ())),
                               t.get("balance", False))
                     for t in sections.get("inlets", [])),
        udp_outlets=tuple(UdpOutletSpec(t["to"], t.get("from", "/service/udp-outlet"), t.get("alias"),
                                        tuple(t.get("authorized", ())))
                          for t in sections.get("udp_outlets", [])),
        udp_inlets=tuple(UdpInletSpec(t["from"], _tuple(t["to"]), t.get("alias"), tuple(t.get("authorized", ())))
                         for t in sections.get("udp_inlets", [])),
        demo_http=demo.get("http"),
        project=(project["name"], project.get("address", ""), project.get("credential_ttl", DEFAULT_CREDENTIAL_TTL))
        if project else (),
        member_of=_relative_to(path, membership["project"]) if membership else None,
        enrollment_ticket=membership.get("enrollment_ticket"),
        relay_box=membership.get("relay_box", False),
        source=path,
    )


def _check_table(path, lines, section, index, table, keys, environ, unset: list) -> dict:
    label = f"{section}[{index}]" if SCHEMA[section][0] else section
    out = {}
    for key, value in table.items():
        line = lines.get((section, index, key))
        if key not in keys:
            raise ConfigError(path, line, f"{label}.{key}", f"unknown key{_hint(key, keys)}")
        expected, _, validate = keys[key]
        if not isinstance(value, expected):
            wanted = {(int, float): "number", (str, list): "string or a list"}.get(expected) or expected.__name__
            raise ConfigError(path, line, f"{label}.{key}", f"expected a {wanted}, got {type(value).__name__}")
        missing = []
        for text in [value] if isinstance(value, str) else value if isinstance(value, list) else []:
            if isinstance(text, str) and _NESTED.search(text):
                raise ConfigError(path, line, f"{label}.{key}", "a ${VAR} inside a default is not supported")
        if isinstance(value, str):
            value, missing = interpolate(value, environ)
        elif isinstance(value, list):
            filled = [interpolate(v, environ) if isinstance(v, str) else (v, []) for v in value]
            value, missing = [v for v, _ in filled], [name for _, names in filled for name in names]
        unset += [(line, f"{label}.{key}", name) for name in missing]
        if validate is not None and not missing:  # with a variable missing it is not a value yet
            try:
                validate(value)
            except (ValueError, WireError) as exc:
                raise ConfigError(path, line, f"{label}.{key}", str(exc)) from None
        out[key] = value
    for key, (_, required, _) in keys.items():
        if required and key not in out:
            raise ConfigError(path, lines.get((section, index, None)), f"{label}.{key}", "missing required key")
    return out


