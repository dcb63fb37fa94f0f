"""Topology files: the shipped examples are valid; every mistake names file, line and key."""

from pathlib import Path

import pytest

from appliance.limits.budgets import Limits
from appliance.config.topology import ConfigError, InletSpec, OutletSpec, RelaySpec, load, parse

CONFIG = Path(__file__).parents[2] / "config"
EXAMPLE_ENV = {"PROJECT_LISTEN": "0.0.0.0:4000", "PROJECT_ADDRESS": "relay.example.com:4000",
               "RELAY_LISTEN": "0.0.0.0:4000", "RELAY_HOST": "relay.example.com", "RELAY_PORT": "4000",
               "SERVICE_ADDRESS": "127.0.0.1:5432", "INLET_ADDRESS": "127.0.0.1:15432"}


@pytest.mark.parametrize("file,node", [("default", "demo"), ("relay", "relay"), ("edge", "edge"), ("client", "client"),
                                       ("project", "project")])
def test_shipped_examples_are_valid(file, node):
    assert load(str(CONFIG / f"{file}.toml"), environ=EXAMPLE_ENV).name == node


def test_default_demo_declares_a_whole_portal():
    topology = load(str(CONFIG / "default.toml"), environ={})
    assert topology.relays == (RelaySpec("demo", ("/ip4/127.0.0.1/tcp/7000",)),)
    assert topology.outlets == (OutletSpec("127.0.0.1:9000", "/service/outlet"),)
    assert topology.inlets == (InletSpec("127.0.0.1:6000",
                                         ("/ip4/127.0.0.1/tcp/7000/service/forward_to_demo/service/outlet",)),)
    assert topology.demo_http == "127.0.0.1:9000"


def test_link_timeout_defaults_to_15_seconds_and_takes_fractions():
    assert parse("").link_timeout == 15.0
    assert parse("[node]\nlink_timeout = 4.5\n").link_timeout == 4.5


def test_a_node_with_a_listener_address_is_a_relay_unless_it_says_not():
    assert parse("").relay is None
    assert parse('[node]\ntcp_listener_address = "0.0.0.0:4000"\n').relay is True
    assert parse('[node]\ntcp_listener_address = "0.0.0.0:4000"\nrelay = false\n').relay is False
    assert parse("[node]\nrelay_grace = 5\n").relay_grace == 5.0


def test_limits_override_the_defaults():
    topology = parse("[limits]\nidle_timeout = 2\nrelays_per_connection = 8\n")
    assert Limits(**dict(topology.limits)) == Limits(idle_timeout=2, relays_per_connection=8)
    assert parse("").limits == ()


def test_environment_interpolation():
    topology = parse('[[relays]]\nname = "${N}-edge"\nat = "/node/${R}"\n', environ={"N": "x", "R": "relay"})
    assert topology.relays == (RelaySpec("x-edge", ("/node/relay",)),)


@pytest.mark.parametrize("text,message", [
    ('[node]\nnmae = "x"\n', "f.toml:2: node.nmae: unknown key (did you mean 'name'?)"),
    ('[nodes]\nname = "x"\n', "f.toml:1: nodes: unknown section (did you mean 'node'?)"),
    ('[node\n', "f.toml:1: invalid TOML"),
    ('[node]\nname = 5\n', "f.toml:2: node.name: expected a str, got int"),
    ('[node]\nlink_timeout = "15"\n', "f.toml:2: node.link_timeout: expected a number, got str"),
    ('[node]\nlink_timeout = 1\n', "f.toml:2: node.link_timeout: must be a number of seconds from 3 to 3600"),
    ('[node]\nlink_timeout = true\n', "f.toml:2: node.link_timeout: must be a number of seconds from 3 to 3600"),
    ('[node]\nrelay = "yes"\n', "f.toml:2: node.relay: expected a bool, got str"),
    ('[node]\nrelay_grace = -1\n', "f.toml:2: node.relay_grace: must be a number of seconds from 0 to 3600"),
    ('[limits]\nidle_timeout = 0\n', "f.toml:2: limits.idle_timeout: must be a number of seconds from 0.5 to 3600"),
    ('[limits]\nrelays_per_node = 2.5\n', "f.toml:2: limits.relays_per_node: must be a positive whole number"),
    ('[limits]\nhandshakes_per_second = 0\n', "f.toml:2: limits.handshakes_per_second: must be a positive rate per second"),
    ('[limits]\nidle_timeot = 3\n', "f.toml:2: limits.idle_timeot: unknown key (did you mean 'idle_timeout'?)"),
    ('[[inlets]]\nfrom = "127.0.0.1:1"\n', "f.toml:1: inlets[0].to: missing required key"),
    ('[[relays]]\nname = "a"\nat = "/node/r"\n[[relays]]\nname = "b c"\nat = "/node/r"\n',
     "f.toml:5: relays[1].name: bad relay name"),
    ('[[outlets]]\nto = "localhost"\n', "f.toml:2: outlets[0].to: expected HOST:PORT"),
    ('[[inlets]]\nfrom = "127.0.0.1:1"\nto = "service/x"\n', "f.toml:3: inlets[0].to: route 'service/x' must start"),
    ('[node]\ntcp_listener_address = "${NOPE}"\n', "f.toml:2: node.tcp_listener_address: environment variable NOPE"),
    ('relays = 3\n', "f.toml: relays: write it as [[relays]] tables"),
])
def test_errors_name_file_line_and_key(text, message):
    with pytest.raises(ConfigError) as info:
        parse(text, "f.toml", environ={})
    assert str(info.value).startswith(message), str(info.value)


def test_missing_file():
    with pytest.raises(ConfigError, match="cannot read"):
        load("/nonexistent/topology.toml")


def test_trust_keys():
    member = "I" + "a" * 40
    topology = parse(f'''
[node]
identity = "gateway"
relay_authorized = ["{member}"]

[[secure_channel_listeners]]
address = "/service/members"
authorized = ["{member}"]

[[relays]]
name = "edge"
at = "/node/relay/secure/api"
authorized = ["{member}"]

[[outlets]]
to = "127.0.0.1:5432"
authorized = ["{member}"]
''', environ={})
    assert topology.identity == "gateway" and topology.relay_authorized == (member,)
    assert topology.secure_channel_listeners[0].authorized == (member,)
    assert topology.relays[0].authorized == (member,) and topology.outlets[0].authorized == (member,)
    with pytest.raises(ConfigError, match=r"f.toml:3: outlets\[0\].authorized: 'bob' is not an identifier"):
        parse('[[outlets]]\nto = "127.0.0.1:1"\nauthorized = ["bob"]\n', "f.toml", environ={})
    with pytest.raises(ConfigError, match=r"expected a list, got str"):
        parse('[[outlets]]\nto = "127.0.0.1:1"\nauthorized = "I"\n', "f.toml", environ={})


@pytest.mark.parametrize("file,node", [("relay", "relay"), ("edge", "edge"), ("client", "client"),
                                       ("project", "project")])
def test_shipped_examples_work_on_one_box_as_shipped(file, node):
    """Every variable in them has a default for one box (a relay on 127.0.0.1:4000)."""
    assert load(str(CONFIG / f"{file}.toml"), environ={}).name == node


def test_a_default_applies_when_the_variable_is_unset_or_empty():
    text = '[[relays]]\nname = "${NAME:-edge}"\nat = "/node/${AT:-relay}"\n'
    assert parse(text, environ={}).relays == (RelaySpec("edge", ("/node/relay",)),)
    assert parse(text, environ={"NAME": "", "AT": "hub"}).relays == (RelaySpec("edge", ("/node/hub",)),)


def test_every_unset_variable_is_reported_at_once_with_its_line():
    text = '[[relays]]\nname = "e"\nat = "/dnsaddr/${HOST}/tcp/${PORT}"\n\n[[outlets]]\nto = "${TARGET}"\n'
    with pytest.raises(ConfigError) as exc:
        parse(text, "f.toml", environ={"PORT": "4000"})
    assert str(exc.value) == "f.toml:3: environment variables are not set: HOST (line 3), TARGET (line 6)"


def test_a_variable_inside_a_default_is_refused_and_comments_name_no_variables():
    from appliance.config.topology import variables

    with pytest.raises(ConfigError, match=r"f.toml:2: outlets\[0\].to: a \$\{VAR\} inside a default is not supported"):
        parse('[[outlets]]\nto = "${S:-127.0.0.1:${Q}}"\n', "f.toml", environ={})
    assert variables('# ${SECRET}\n[node]\nname = "${N:-a}"\n\n[[outlets]]\nto = "${T}"\n') == ["N", "T"]


def test_variable_sources_say_where_each_value_comes_from():
    from appliance.config.topology import variable_sources

    text = '[node]\nname = "${NAME}"\ntcp_listener_address = "${HOST:-127.0.0.1}:${PORT}"\n' \
           '[[relays]]\nname = "${RELAY:-r}"\nat = "/node/${AT}"\n# ${COMMENTED}\n'
    layers = [("the shell", {"NAME": "edge", "HOST": ""}), ("the node", {"PORT": "7000", "NAME": "other", "AT": ""})]
    assert variable_sources(text, layers) == {
        "NAME": "the shell",  # the first layer that sets it wins
        "HOST": "its default",  # set but empty: the default applies, as in interpolate()
        "PORT": "the node", "RELAY": "its default",
        "AT": "the node",  # set but empty and no default: empty, from there
    }


def test_relays_and_inlets_take_one_route_or_several():
    text = ('[[relays]]\nname = "edge"\nat = ["/node/r1", "/node/${SECOND:-r2}"]\n'
            '[[inlets]]\nfrom = "127.0.0.1:6000"\nto = ["/node/r1/service/forward_to_edge/service/outlet",\n'
            '      "/node/r2/service/forward_to_edge/service/outlet"]\nbalance = true\n')
    topology = parse(text, environ={})
    assert topology.relays == (RelaySpec("edge", ("/node/r1", "/node/r2")),)
    assert topology.inlets == (InletSpec("127.0.0.1:6000", ("/node/r1/service/forward_to_edge/service/outlet",
                                                            "/node/r2/service/forward_to_edge/service/outlet"),
                                         balance=True),)
    with pytest.raises(ConfigError, match=r"<topology>:3: relays\[0\].at: expected a route or a list of routes"):
        parse('[[relays]]\nname = "edge"\nat = []\n', environ={})
    with pytest.raises(ConfigError, match=r"relays\[0\].at: environment variable X is not set"):
        parse('[[relays]]\nname = "edge"\nat = ["/node/${X}"]\n', environ={})
