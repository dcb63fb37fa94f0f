"""Entry point of `ockam`: global options, then one command group (each in its own module,
which parses the rest of the line with docopt)."""

from __future__ import annotations

import difflib
import json
import re
import sys

from appliance import __version__
from appliance.cli.errors import CliError
from appliance.cli.output import Output

HELP = """\
Usage:
  ockam <command> [<args>...]
  ockam --version
  ockam --help

Commands:
  node              create, run, list, show, delete, start, stop, reload, logs, default
  tcp-listener      TCP listeners of a node
  tcp-connection    outgoing TCP connections of a node
  relay             relays at another node (older name: forwarder)
  message           send a message along a route and print the reply
  tcp-outlet        expose a TCP service at a node
  tcp-inlet         a local TCP port that reaches an outlet
  identity          the identities nodes authenticate as
  secure-channel    end-to-end encrypted, mutually authenticated channels
  secure-channel-listener   where a node accepts secure channels (every node has /service/api)
  config            check a TOML topology file
  service           install a topology as a systemd unit or Windows service
  project           a self-hosted project node: information, tickets, enrollment

Global options (anywhere on the line):
  --output=<fmt>    plain (default) or json
  -q, --quiet       print nothing but errors
  -v, --verbose     the traceback of an unexpected error; -vv: a node run in the
                    foreground also logs at debug level
  --no-color        accepted for compatibility (output has no colour)

Run 'ockam <command> --help' for a command's usage.
"""

COMMAND_MODULES = {
    "node": "appliance.cli.node_cmd",
    "tcp-listener": "appliance.cli.tcp_cmd",
    "tcp-connection": "appliance.cli.tcp_cmd",
    "relay": "appliance.cli.relay_cmd",
    "forwarder": "appliance.cli.relay_cmd",
    "message": "appliance.cli.message_cmd",
    "tcp-outlet": "appliance.cli.portal_cmd",
    "tcp-inlet": "appliance.cli.portal_cmd",
    "config": "appliance.cli.config_cmd",
    "identity": "appliance.cli.identity_cmd",
    "secure-channel": "appliance.cli.secure_channel_cmd",
    "secure-channel-listener": "appliance.cli.secure_channel_cmd",
    "service": "appliance.cli.service_cmd",
    "project": "appliance.cli.project_cmd",
}


def split_global_options(argv: list[str]) -> tuple[list[str], Output]:
    out = Output()
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg in ("-q", "--quiet"):
            out.quiet = True
        elif arg == "--no-color":
            pass
        elif arg in ("-v", "--verbose") or (arg.startswith("-v") and set(arg[1:]) == {"v"}):
            out.verbose += 1 if arg == "--verbose" else len(arg) - 1
        elif arg == "--output" or arg.startswith("--output="):
            value = arg.partition("=")[2] if "=" in arg else next(args, "")
            if value not in ("plain", "json"):
                raise CliError(f"--output must be plain or json, not {value!r}", code=2)
            out.format = value
        else:
            rest.append(arg)
    return rest, out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv in (["--version"], ["-V"], ["version"]):  # answered before anything heavy is imported
        print(f"ockam {__version__} (ockam-appliance)")
        return 0
    from appliance.config.topology import ConfigError
    from appliance.host.process import ProcessError
    from appliance.host.state import StateError

    out = Output()
    try:
        argv, out = split_global_options(argv)
        return run(argv, out)
    except CliError as exc:
        return fail(out, str(exc), exc.code)
    except ConfigError as exc:
        return fail(out, str(exc), 2)
    except (StateError, ProcessError) as exc:
        return fail(out, str(exc), 1)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - last resort: one line, the traceback only with -v
        if out.verbose:
            raise
        return fail(out, f"unexpected {type(exc).__name__}: {exc} (run with -v for details)", 1)


def fail(out: Output, message: str, code: int) -> int:
    """The error on stderr, as one line of text, or of JSON with --output json; its exit code."""
    if out.format == "json":
        print(json.dumps({"error": message, "exit_code": code}), file=sys.stderr)
    else:
        print(f"Error: {message}", file=sys.stderr)
    return code


def run(argv: list[str], out: Output) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(HELP.strip())
        return 0
    if argv[0] in ("--version", "-V", "version"):
        print(f"ockam {__version__} (ockam-appliance)")
        return 0
    command = argv[0]
    if command not in COMMAND_MODULES:
        raise CliError(f"unknown command {command!r}{did_you_mean(command, COMMAND_MODULES)} "
                       "(see 'ockam --help')", code=2)
    import importlib

    from docopt import DocoptExit, docopt

    module = importlib.import_module(COMMAND_MODULES[command])
    usage = module.usage(command)
    if "-h" in argv or "--help" in argv:
        print(usage.strip())
        return 0
    try:
        args = docopt(usage, argv=argv, default_help=False)
    except DocoptExit:
        raise CliError(f"{what_is_wrong(argv, usage)} for 'ockam {' '.join(argv[:2])}' "
                       f"(see 'ockam {command} --help')", code=2) from None
    return module.run(command, args, out) or 0


def did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def what_is_wrong(argv: list[str], usage: str) -> str:
    """The first option the command does not take (its usage lines say which it does), with
    the closest one it does; else only that the arguments do not fit (docopt says no more)."""
    lines = [line for line in usage.splitlines() if line.strip().startswith(f"ockam {' '.join(argv[:2])} ")]
    known = set(re.findall(r"--[a-z][a-z-]*", "\n".join(lines) if lines else usage))
    for arg in argv:
        option = arg.partition("=")[0]
        abbreviates = sum(k.startswith(option) for k in known) == 1  # docopt takes a unique prefix
        if option.startswith("--") and option not in known and not abbreviates:
            return f"unknown option {option!r}{did_you_mean(option, known)}"
    return "bad arguments"


if __name__ == "__main__":
    raise SystemExit(main())
