"""`ockam service ...`: install a node's topology as a systemd unit or a Windows service."""

from __future__ import annotations

import os
import sys

from appliance.cli.output import Output
from appliance.config import topology as topology_file

USAGE = """
Usage:
  ockam service install --config=<file> [--name=<name>] [--root=<dir>] [--no-start] [--print]
  ockam service uninstall --name=<name> [--root=<dir>] [--no-start]
  ockam service status --name=<name> [--root=<dir>]
  ockam service run --config=<file> [--name=<name>] [--home=<dir>]

Linux: writes /etc/systemd/system/ockam-<name>.service (a hardened Type=notify unit running
'ockam node run /etc/ockam/<name>.toml' as a dynamic user) and enables it. --root writes
under another directory; --no-start skips systemctl; --print shows the unit and writes nothing.
Windows (pywin32): registers, removes or queries the service ockam-<name>; 'service run' is
what the service manager starts, with --home the state directory of the CLI that installed
it (so that 'ockam node reload <name>' from that shell reaches it).
"""

WINDOWS = sys.platform == "win32"


def usage(_command: str) -> str:
    return USAGE


def run(_command: str, args, out: Output) -> None:
    if WINDOWS:
        from appliance.host import service_windows as impl
    else:
        from appliance.host import service_linux as impl
    root = args["--root"] or "/"
    start = not args["--no-start"]
    if args["install"]:
        if args["--print"] and not WINDOWS:
            name = args["--name"] or topology_file.load(args["--config"]).name
            out.result(impl.render_unit(name, f"/etc/ockam/{name}.toml"))
            return
        result = impl.install(args["--config"], args["--name"], root, start) if not WINDOWS else \
            impl.install(args["--config"], args["--name"], start)
        written = f"\n  {', '.join(result['variables'])} written to {result['environment']}" \
            if result.get("environment") else ""
        out.result(result.get("unit") or result["service"], data=result,
                   human=f"Installed {result.get('unit') or result['service']}" + (" and started it" if start else "")
                   + written)
    elif args["uninstall"]:
        result = impl.uninstall(args["--name"], root, start) if not WINDOWS else impl.uninstall(args["--name"])
        out.result(f"Removed {result['removed']}", data=result)
    elif args["status"]:
        result = impl.status(args["--name"], root) if not WINDOWS else impl.status(args["--name"])
        out.result("\n".join(f"{k}: {v}" for k, v in result.items()), data=result)
    elif args["run"]:
        if WINDOWS:
            if args["--home"]:
                os.environ["OCKAM_HOME"] = args["--home"]
            impl.run(args["--config"], args["--name"] or topology_file.load(args["--config"]).name)
        else:
            from appliance.host.launch import file_node_service

            file_node_service(args["--config"], out.verbose).run()
