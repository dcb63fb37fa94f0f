"""Identities through the real CLI: keys at rest, corrupt files, defaults."""

import os
import stat
from pathlib import Path

from tests.e2e.test_cli_errors import assert_one_line_error


def test_identity_lifecycle_and_key_file_permissions(ockam):
    alice = ockam("identity", "create", "alice")
    assert alice.startswith("I") and len(alice) == 41
    assert ockam("identity", "show", "alice") == alice
    assert ockam("identity", "default") == "alice"
    bob = ockam("identity", "create", "bob")
    ockam("identity", "default", "bob")
    assert ockam("identity", "show") == bob
    key = Path(ockam.home, "identities", "alice.key")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(key.parent).st_mode) == 0o700
    ockam("node", "create", "n1", "--identity", "alice")
    assert f"Identity: {alice}" in ockam("node", "show", "n1", "--output", "plain")
    log = Path(ockam("node", "logs", "n1")).read_text()
    assert key.read_text().strip() not in log, "secret key material must never be logged"


def test_identity_errors(ockam):
    ockam("identity", "create", "alice")
    assert_one_line_error(ockam.run("identity", "create", "alice", check=False), match="already exists")
    assert_one_line_error(ockam.run("identity", "show", "nobody", check=False), match="does not exist")
    assert_one_line_error(ockam.run("node", "create", "n1", "--identity", "nobody", check=False),
                          match="does not exist")
    Path(ockam.home, "identities", "alice.key").write_text("not hex at all\n")
    assert_one_line_error(ockam.run("identity", "show", "alice", check=False), match="is corrupt")
    assert_one_line_error(ockam.run("node", "create", "n1", "--identity", "alice", check=False),
                          match="is corrupt")
    assert_one_line_error(ockam.run("secure-channel", "create", "--to", "/service/api", check=False),
                          match="no default node")
