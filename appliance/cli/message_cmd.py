"""`ockam message send`: one message along a route, print the reply."""

from __future__ import annotations

from appliance.cli import client
from appliance.cli.common import node_arg, route_arg
from appliance.cli.errors import CliError
from appliance.cli.output import Output

USAGE = """
Usage:
  ockam message send <message> --to=<route> [--from=<node>] [--timeout=<seconds>] [--hex]

Without --from the message leaves from a temporary node inside this command.

Options:
  --timeout=<seconds>  how long to wait for the reply [default: 10]
  --hex                <message> is hex bytes sent as they are (the reply is shown as hex
                       unless it is a BARE string)
"""


def usage(_command: str) -> str:
    return USAGE


def run(_command: str, args, out: Output) -> None:
    try:
        timeout = float(args["--timeout"])
    except ValueError:
        raise CliError(f"--timeout must be a number of seconds, not {args['--timeout']!r}", code=2) from None
    request = {"route": route_arg(args["--to"]), "message": args["<message>"],
               "timeout": timeout, "hex": bool(args["--hex"])}
    if args["--from"]:
        result = client.call(node_arg(args["--from"]), "message.send", request, timeout=timeout + 5)
    else:
        result = client.call_in_process("message.send", request)
    out.result(result["reply"], data=result)
