"""The compiled build: the modules every message passes through, compiled with mypyc.

    python packaging/compiled.py [DEST]        (make compiled: DEST is build/compiled)

Copies `appliance/` to DEST/appliance and compiles HOT_PATH there, in place of their `.py`
files; with DEST first on PYTHONPATH, every process (the CLI, its nodes, the tests) runs the
compiled modules and the pure-Python rest. The source tree is never touched, so the pure
modules stay what `pip install -e .` runs and what the suite checks first; nothing stale can
shadow a `.py` being edited. mypyc compiles from the type annotations; the classes on the
path are native (their attributes are fixed and typed, methods are called directly), which
is where it pays: bench.ab, docs/PERFORMANCE.md.

Without mypy, a C compiler or Python's headers it exits 0 with a note and removes DEST: the
pure build runs instead (make test-compiled then stops and says so). A failed build removes
DEST too: nothing stale is ever left to be tested or measured as if it were current.
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
    "appliance/wire/bare.py",
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
    "appliance/node/shortcuts.py",
    "appliance/node/transport/links.py",
    "appliance/node/transport/sockets.py",
    "appliance/node/transport/writer.py",
    "appliance/node/transport/tcp.py",
    "appliance/node/channels/channel.py",
    "appliance/node/relays/relay.py",
    "appliance/node/portals/portal.py",
)


def missing_tools() -> str | None:
    for module in ("mypyc", "setuptools"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed: pip install -e '.[compile]'"
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        return "no Python headers (Python.h)"
    return None


def build(dest: Path) -> int:
    fresh, old = dest.with_name(dest.name + ".new"), dest.with_name(dest.name + ".old")
    for path in (fresh, old):
        shutil.rmtree(path, ignore_errors=True)
    reason = missing_tools()
    if reason:
        shutil.rmtree(dest, ignore_errors=True)
        print(f"compiled build skipped: {reason}; the pure-Python modules run instead")
        return 0
    shutil.copytree(ROOT / "appliance", fresh / "appliance", ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "mypyc", "--ignore-missing-imports", *HOT_PATH], cwd=fresh,
                          capture_output=True, text=True, env={**os.environ, "MYPYC_OPT_LEVEL": "3"})
    if proc.returncode != 0:
        shutil.rmtree(dest, ignore_errors=True)
        errors = [line for line in proc.stdout.splitlines() + proc.stderr.splitlines() if ": error:" in line]
        print("compiled build failed:\n" + "\n".join(errors or proc.stderr.strip().splitlines()[-20:]), file=sys.stderr)
        return 1
    for source in HOT_PATH:  # the extension modules take their place
        (fresh / source).unlink()
    for leftover in ("build", ".mypy_cache"):
        shutil.rmtree(fresh / leftover, ignore_errors=True)
    if dest.exists():  # aside first: a process starting meanwhile finds one whole build or none
        dest.rename(old)
    fresh.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    print(f"compiled {len(HOT_PATH)} modules into {dest}: put it first on PYTHONPATH to run them")
    return 0


if __name__ == "__main__":
    raise SystemExit(build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "compiled"))
