"""An owner-only ACL on Windows (file modes mean little there): the file's DACL allows the
current user everything and nobody else anything, and inherits nothing from its folder.
A service runs as LocalSystem, and the administrators who installed it manage it from their
own shells (`ockam node reload`): its files allow the Administrators group as well."""

from __future__ import annotations

import os

from appliance.host.state import StateError

LOCAL_SYSTEM = "S-1-5-18"
ADMINISTRATORS = "S-1-5-32-544"


def restrict_to_owner(path: str) -> None:
    try:
        import ntsecuritycon
        import win32api
        import win32security
    except ImportError:
        raise StateError("an owner-only file on Windows needs pywin32 (pip install pywin32)") from None
    token = win32security.OpenProcessToken(win32api.GetCurrentProcess(), win32security.TOKEN_QUERY)
    user = win32security.GetTokenInformation(token, win32security.TokenUser)[0]
    # a folder's entries are inherited by what is made in it (node.log, node.json): a
    # protected DACL without them would leave those files with no entry at all
    inherit = win32security.OBJECT_INHERIT_ACE | win32security.CONTAINER_INHERIT_ACE if os.path.isdir(path) else 0
    allowed = [user]
    if win32security.ConvertSidToStringSid(user) == LOCAL_SYSTEM:
        allowed.append(win32security.ConvertStringSidToSid(ADMINISTRATORS))
    dacl = win32security.ACL()
    for sid in allowed:
        dacl.AddAccessAllowedAceEx(win32security.ACL_REVISION, inherit, ntsecuritycon.FILE_ALL_ACCESS, sid)
    win32security.SetNamedSecurityInfo(
        path, win32security.SE_FILE_OBJECT,
        win32security.DACL_SECURITY_INFORMATION | win32security.PROTECTED_DACL_SECURITY_INFORMATION,
        None, None, dacl, None)
