"""The compiled build: the modules every message passes through, compiled with mypyc.

    python packaging/compiled.py [DEST]        (make compiled: DEST is build/compiled)

Copies `appliance/` to DEST/appliance and compiles HOT_PATH there, in place of their `.py`
files; with DEST first on PYTHONPATH, every process (the CLI, its nodes, the tests) runs the
compiled modules and the pure-Python rest. The source tree is never touched, so the pure
modules stay what `pip install -e .` runs and what the suite checks first; nothing stale can
shadow a `.py` being edited. mypyc compiles from the type annotations; the classes on the
path are native (their attributes are fixed and typed, methods are called directly), which
is where it pays: bench.ab, docs/PERFORMANCE.md.

Exits 0 with a note and no DEST when mypy or a C compiler is missing: the pure build is the
fallback, never an error.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# what the profile names, from the socket in to the socket out: the transport's read and
# write paths, the router, relaying, the secure channel's data phase, portal streams, codecs
HOT_PATH = (
    "appliance/wire/address.py",
    "appliance/wire/framing.py",
    "appliance/wire/transport.py",
    "appliance/wire/portal.py",
    "appliance/wire/secure_channel.py",
    "appliance/stream/state.py",
    "appliance/stream/credit.py",
    "appliance/secure/aead.py",
    "appliance/secure/suites.py",
    "appliance/secure/channel.py",
    "appliance/node/message.py",
    "appliance/node/worker.py",
    "appliance/node/node.py",
    "appliance/node/transport/links.py",
    "appliance/node/transport/sockets.py",
    "appliance/node/transport/writer.py",
    "appliance/node/transport/tcp.py",
    "appliance/node/channels/channel.py",
    "appliance/node/relays/relay.py",
    "appliance/node/portals/portal.py",
)


def missing_tools() -> str | None:
    if importlib.util.find_spec("mypyc") is None:
        return "mypy (with mypyc) is not installed: pip install -e '.[compile]'"
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    return None


def build(dest: Path) -> int:
    reason = missing_tools()
    if reason:
        print(f"compiled build skipped: {reason}; the pure-Python modules run instead")
        return 0
    fresh = dest.with_name(dest.name + ".new")
    shutil.rmtree(fresh, ignore_errors=True)
    shutil.copytree(ROOT / "appliance", fresh / "appliance", ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "mypyc", "--ignore-missing-imports", *HOT_PATH], cwd=fresh,
                          capture_output=True, text=True, env={**os.environ, "MYPYC_OPT_LEVEL": "3"})
    if proc.returncode != 0:
        errors = [line for line in proc.stdout.splitlines() + proc.stderr.splitlines() if ": error:" in line]
        print("compiled build failed:\n" + "\n".join(errors or proc.stderr.strip().splitlines()[-20:]), file=sys.stderr)
        return 1
    for source in HOT_PATH:  # the extension modules take their place
        (fresh / source).unlink()
    shutil.rmtree(fresh / "build", ignore_errors=True)
    shutil.rmtree(dest, ignore_errors=True)
    fresh.rename(dest)
    print(f"compiled {len(HOT_PATH)} modules into {dest}: put it first on PYTHONPATH to run them")
    return 0


if __name__ == "__main__":
    raise SystemExit(build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "compiled"))
