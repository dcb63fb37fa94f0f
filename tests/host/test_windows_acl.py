"""The owner-only ACL, against fake pywin32 modules (Wine enforces no ACL, so only the DACL
that is written can be checked)."""

import sys
import types

import pytest

from appliance.host import windows_acl


@pytest.fixture
def written(monkeypatch):
    """The SIDs each call of restrict_to_owner allows, and the user the process runs as."""
    record = types.SimpleNamespace(user="S-1-5-21-1-2-3-1001", allowed=[], flags=None)

    class Acl:
        def AddAccessAllowedAceEx(self, revision, inherit, mask, sid):
            record.allowed.append((sid, mask, inherit))

    def set_security(path, kind, flags, owner, group, dacl, sacl):
        record.flags = flags

    security = types.SimpleNamespace(
        OpenProcessToken=lambda process, access: "token", TOKEN_QUERY=8, TokenUser=1,
        GetTokenInformation=lambda token, kind: (record.user, 0), ACL=Acl, ACL_REVISION=2,
        ConvertSidToStringSid=lambda sid: sid, ConvertStringSidToSid=lambda text: text,
        SetNamedSecurityInfo=set_security, SE_FILE_OBJECT=1, DACL_SECURITY_INFORMATION=4,
        OBJECT_INHERIT_ACE=1, CONTAINER_INHERIT_ACE=2,
        PROTECTED_DACL_SECURITY_INFORMATION=0x80000000)
    for name, module in (("win32security", security), ("win32api", types.SimpleNamespace(GetCurrentProcess=lambda: 0)),
                         ("ntsecuritycon", types.SimpleNamespace(FILE_ALL_ACCESS=0x1F01FF))):
        monkeypatch.setitem(sys.modules, name, module)
    return record


def test_a_users_file_allows_that_user_only_and_inherits_nothing(written, tmp_path):
    (tmp_path / "control.json").write_text("{}")
    windows_acl.restrict_to_owner(str(tmp_path / "control.json"))
    assert written.allowed == [("S-1-5-21-1-2-3-1001", 0x1F01FF, 0)]
    assert written.flags == 4 | 0x80000000


def test_a_folders_entries_are_inherited_by_the_files_made_in_it(written, tmp_path):
    windows_acl.restrict_to_owner(str(tmp_path))
    assert written.allowed == [("S-1-5-21-1-2-3-1001", 0x1F01FF, 1 | 2)]


def test_a_services_file_allows_the_administrators_who_manage_it(written, tmp_path):
    written.user = windows_acl.LOCAL_SYSTEM
    (tmp_path / "control.json").write_text("{}")
    windows_acl.restrict_to_owner(str(tmp_path / "control.json"))
    assert written.allowed == [(windows_acl.LOCAL_SYSTEM, 0x1F01FF, 0), (windows_acl.ADMINISTRATORS, 0x1F01FF, 0)]
