"""gevent for the frozen `ockam`: PyInstaller's own hook, without the submodules we leave out
(unused.py), so that none of them is asked for and then reported missing."""

import os
import sys

from PyInstaller.utils.hooks import collect_all, copy_metadata

sys.path.insert(0, os.path.dirname(__file__))
from unused import unused_gevent  # noqa: E402 - next to this hook, not an installed module

excludedimports = ["gevent.testing", "gevent.tests"]
datas, binaries, hiddenimports = collect_all("gevent", filter_submodules=lambda name: not unused_gevent(name),
                                             include_py_files=False, exclude_datas=["**/tests"])
datas += copy_metadata("gevent", recursive=True)  # gevent asks pkg_resources for its dependencies
