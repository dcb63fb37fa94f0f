"""The frozen executable itself: it runs without Python around it and reports its version.

Run by `make smoke` with OCKAM_BIN=dist/ockam; skipped in the plain suite.
"""

import os
import subprocess

import pytest

from appliance import __version__

BINARY = os.environ.get("OCKAM_BIN")
pytestmark = pytest.mark.skipif(not BINARY, reason="set OCKAM_BIN to a frozen ockam binary (make smoke)")


def test_version_and_help():
    assert subprocess.run([BINARY, "--version"], capture_output=True, text=True).stdout.strip() == \
        f"ockam {__version__} (ockam-appliance)"
    help_text = subprocess.run([BINARY, "--help"], capture_output=True, text=True).stdout
    assert "tcp-inlet" in help_text and "secure-channel" in help_text


def test_runs_without_a_python_environment(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "OCKAM_HOME": str(tmp_path), "HOME": str(tmp_path)}
    proc = subprocess.run([BINARY, "message", "send", "frozen", "--to", "/service/uppercase"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.stdout.strip() == "FROZEN", proc.stderr


def test_bad_input_is_one_line_not_a_traceback(tmp_path):
    proc = subprocess.run([BINARY, "node", "show", "ghost"], capture_output=True, text=True,
                          env={**os.environ, "OCKAM_HOME": str(tmp_path)})
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
