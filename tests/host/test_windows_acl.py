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
        def AddAccessAllowedAce(self, revision, mask, sid):
            record.allowed.append((sid, mask))

    def set_security(path, kind, flags, owner, group, dacl, sacl):
        record.flags = flags

    security = types.SimpleNamespace(
        OpenProcessToken=lambda process, access: "token", TOKEN_QUERY=8, TokenUser=1,
        GetTokenInformation=lambda token, kind: (record.user, 0), ACL=Acl, ACL_REVISION=2,
        ConvertSidToStringSid=lambda sid: sid, ConvertStringSidToSid=lambda text: text,
        SetNamedSecurityInfo=set_security, SE_FILE_OBJECT=1, DACL_SECURITY_INFORMATION=4,
        PROTECTED_DACL_SECURITY_INFORMATION=0x80000000)
    for name, module in (("win32security", security), ("win32api", types.SimpleNamespace(GetCurrentProcess=lambda: 0)),
                         ("ntsecuritycon", types.SimpleNamespace(FILE_ALL_ACCESS=0x1F01FF))):
        monkeypatch.setitem(sys.modules, name, module)
    return record


def test_a_users_file_allows_that_user_only_and_inherits_nothing(written):
    windows_acl.restrict_to_owner(r"C:\Users\op\.ockam\nodes\n1\control.json")
    assert written.allowed == [("S-1-5-21-1-2-3-1001", 0x1F01FF)]
    assert written.flags == 4 | 0x80000000


def test_a_services_file_allows_the_administrators_who_manage_it(written):
    written.user = windows_acl.LOCAL_SYSTEM
    windows_acl.restrict_to_owner(r"C:\ProgramData\ockam\nodes\edge\control.json")
    assert written.allowed == [(windows_acl.LOCAL_SYSTEM, 0x1F01FF), (windows_acl.ADMINISTRATORS, 0x1F01FF)]
