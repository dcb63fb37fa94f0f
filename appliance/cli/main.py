"""Entry point of `ockam`: global options, then one command group (each in its own module,
which parses the rest of the line with docopt)."""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import sys

from appliance import __version__
from appliance.cli.errors import CliError
from appliance.errors import ApplianceError
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
  udp-outlet        expose a UDP service at a node
  udp-inlet         a local UDP port that reaches a UDP outlet
  identity          the identities nodes authenticate as
  secure-channel    end-to-end encrypted, mutually authenticated channels
  secure-channel-listener   where a node accepts secure channels (every node has /service/api)
  config            check a TOML topology file
  service           install a topology as a systemd unit or Windows service
  project           a self-hosted project node: information, tickets, enrollment

Global options (anywhere on the line):
  --output=<fmt>    plain (default) or json
  -q, --quiet       print nothing but errors
  -v, --verbose     the traceback of an unexpected error; -vv: also debug logs on stderr
                    (each request to a node and its answer; a foreground node's own log)
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
    "udp-outlet": "appliance.cli.portal_cmd",
    "udp-inlet": "appliance.cli.portal_cmd",
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
    out = Output()
    try:
        argv, out = split_global_options(argv)
        if out.verbose >= 2:  # what the command asks its node, and what a node inside it does
            logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
        return run(argv, out)
    except ApplianceError as exc:
        return fail(out, str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # whoever read our output stopped (`| head`): nothing to tell it, as for SIGPIPE
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 141
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
        raise CliError(what_is_wrong(argv, usage), code=2) from None
    return module.run(command, args, out) or 0


def did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def what_is_wrong(argv: list[str], usage: str) -> str:
    """What docopt refused (it says no more than that), said exactly, with the usage of the
    command meant: an unknown subcommand or option (with the closest one), an option without
    its value or given twice, a missing option or argument, or one too many."""
    lines = [line.split()[1:] for line in usage.splitlines() if line.strip().startswith("ockam ")]
    depth = max((_common(argv, _verbs(line)) for line in lines), default=0)
    mine = [line for line in lines if _verbs(line) == argv[:len(_verbs(line))] and len(_verbs(line)) == depth]
    if not mine:  # argv stops, or goes wrong, among the subcommands
        choices = sorted({_verbs(line)[depth] for line in lines
                          if len(_verbs(line)) > depth and _verbs(line)[:depth] == argv[:depth]})
        command = " ".join(argv[:depth])
        if len(argv) <= depth:
            return f"'ockam {command}' needs a subcommand: {', '.join(choices)}"
        return f"unknown subcommand {argv[depth]!r}{did_you_mean(argv[depth], choices)} for 'ockam {command}'"
    command = " ".join(argv[:depth])
    usage_line = f" (usage: ockam {' '.join(mine[0])}{' ...' if len(mine) > 1 else ''})"
    return f"{_misfit(argv[depth:], mine[0][depth:])} for 'ockam {command}'{usage_line}"


def _verbs(line: list[str]) -> list[str]:
    """The command words a usage line starts with: `project member remove`."""
    words = []
    for word in line:
        if word.startswith(("-", "<", "[", "(")):
            break
        words.append(word)
    return words


def _common(argv: list[str], verbs: list[str]) -> int:
    n = 0
    while n < min(len(argv), len(verbs)) and argv[n] == verbs[n]:
        n += 1
    return n


def _misfit(args: list[str], pattern: list[str]) -> str:
    """Why `args` do not fit the rest of one usage line (`--to=<route> [--at=<node>] <name>`):
    the words are read as docopt reads them, an option that takes a value taking the next."""
    text = " ".join(pattern)
    takes_value = set(re.findall(r"(--[a-z][a-z-]*)=<", text))
    options = set(re.findall(r"--[a-z][a-z-]*", text))
    repeatable = set(re.findall(r"(--[a-z][a-z-]*)=<[^>]*>\.\.\.", text))
    required = re.sub(r"\[[^]]*\]", "", text).split()  # what is not in [...]
    seen: list = []
    positionals: list = []
    words = iter(args)
    for word in words:
        if word.startswith("--") and len(word) > 2:
            name, has_value, _ = word.partition("=")
            matches = [o for o in options if o == name] or [o for o in options if o.startswith(name)]
            if len(matches) != 1:
                return f"unknown option {name!r}{did_you_mean(name, options)}"
            name = matches[0]
            if name in takes_value and not has_value and next(words, None) is None:
                return f"{name} needs a value"
            if name not in takes_value and has_value:
                return f"{name} takes no value"
            if name in seen and name not in repeatable:
                return f"{name} given twice"
            seen.append(name)
        elif word.startswith("-") and word != "-":
            return f"unknown option {word!r}"
        else:
            positionals.append(word)
    for word in required:
        if word.startswith("--") and word.partition("=")[0] not in seen:
            return f"missing {word.removesuffix('...')}"
    wanted = [word for word in required if word.startswith("<")]
    if len(positionals) < len(wanted):
        return f"missing {wanted[len(positionals)]}"
    allowed = re.findall(r"(?<![=\w])<[a-z_-]+>(\.\.\.)?", text)
    if not any(allowed) and len(positionals) > len(allowed):  # no <x>... takes the rest
        return f"unexpected argument {positionals[len(allowed)]!r}"
    return "bad arguments"


if __name__ == "__main__":
    raise SystemExit(main())
