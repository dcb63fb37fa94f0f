"""Modules the frozen `ockam` leaves out: what gevent's hooks and the standard library drag in
but the appliance never uses. Read by ockam.spec (excludes) and by our gevent hook, which
collects gevent without them (PyInstaller's own hook lists every gevent submodule, and each
excluded one then printed a 'Hidden import not found' warning: 364 of them)."""

import sys

# gevent's loop: libev on Linux, libuv on Windows (its default there, and the one its own
# tests run; a Windows exe with libev stalled its first portal connection under Wine).
# The other loop is left out, and so are the cffi build scripts (`_corecffi_build`), which
# import distutils through cffi._shimmed_dist_utils.
if sys.platform == "win32":
    UNUSED_LOOP = ("gevent.libev",)
else:
    UNUSED_LOOP = ("gevent.libuv", "gevent._ffi")

GEVENT = UNUSED_LOOP + (
    # (the default thread resolver needs gevent.threadpool)
    "gevent.testing", "gevent.tests", "gevent.resolver.ares", "gevent.libev._corecffi_build",
    "gevent.libuv._corecffi_build",
    "gevent.resolver.dnspython", "gevent.backdoor", "gevent.ssl", "gevent._ssl3",
    "gevent.resolver.cares", "gevent.resolver_ares",
)

OTHERS = (
    "tkinter", "unittest", "pydoc", "doctest", "lib2to3", "xmlrpc", "sqlite3", "curses",
    "distutils", "setuptools", "pkg_resources", "pip", "test", "cryptography",
    "noise", "hypothesis", "pytest", "_pytest", "cffi._shimmed_dist_utils",
    # OpenSSL (libssl + libcrypto, ~6 MB to unpack at every start): PyNaCl does our crypto,
    # and hashlib/hmac fall back to CPython's builtin SHA-256
    "ssl", "_ssl", "_hashlib", "lzma", "_lzma", "bz2", "_bz2",
    # unpacked at every start but never loaded: CJK codecs, decimal
    "_codecs_jp", "_codecs_hk", "_codecs_cn", "_codecs_kr", "_codecs_tw", "_codecs_iso2022",
    "_multibytecodec", "decimal", "_decimal",
)


def unused_gevent(name: str) -> bool:
    return any(name == module or name.startswith(module + ".") for module in GEVENT)
