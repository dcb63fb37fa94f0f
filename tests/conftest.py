"""The whole suite: which build of the hot path it checks.

`make test-compiled` sets OCKAM_COMPILED=1 and puts build/compiled first on PYTHONPATH; the
run stops at once if the modules it imports are not the compiled ones (a path mistake would
otherwise check the pure build twice and say nothing)."""

import os

import pytest


def _router_file() -> str:
    """Where the router was imported from: a shared library in the compiled build."""
    from appliance.node import node
    return node.__file__


def _compiled() -> bool:
    return _router_file().endswith(".so")


def pytest_configure(config):
    if os.environ.get("OCKAM_COMPILED") != "1":
        return
    if not _compiled():
        raise pytest.UsageError(f"OCKAM_COMPILED=1 but appliance.node.node is {_router_file()}: no compiled build "
                                "(make compiled says why), or build/compiled is not first on PYTHONPATH (python -P)")


def pytest_report_header(config):
    return f"hot path: {'compiled' if _compiled() else 'pure Python'} ({_router_file()})"


def pytest_collection_modifyitems(config, items):
    """`@pytest.mark.pure_only(reason)`: a test that patches a function or method of the hot
    path to provoke what it checks. Compiled code calls its own functions directly, so the
    patch would not take there; the pure build checks it."""
    if not _compiled():
        return
    for item in items:
        marker = item.get_closest_marker("pure_only")
        if marker is not None:
            what = marker.args[0] if marker.args else "a function of the hot path"
            item.add_marker(pytest.mark.skip(reason=f"pure build only: patches {what}"))
