"""The whole suite: which build of the hot path it checks.

`make test-compiled` sets OCKAM_COMPILED=1 and puts build/compiled first on PYTHONPATH; the
run stops at once if the modules it imports are not the compiled ones (a path mistake would
otherwise check the pure build twice and say nothing)."""

import os

import pytest


def pytest_configure(config):
    if os.environ.get("OCKAM_COMPILED") != "1":
        return
    from appliance.node import node
    if not node.__file__.endswith(".so"):
        raise pytest.UsageError(f"OCKAM_COMPILED=1 but {node.__name__} is {node.__file__}: no compiled build "
                                "(make compiled says why), or build/compiled is not first on PYTHONPATH (python -P)")


def pytest_report_header(config):
    from appliance.node import node
    return f"hot path: {'compiled' if node.__file__.endswith('.so') else 'pure Python'} ({node.__file__})"


def pytest_collection_modifyitems(config, items):
    """`@pytest.mark.pure_only(reason)`: a test that patches a function or method of the hot
    path to provoke what it checks. Compiled code calls its own functions directly, so the
    patch would not take there; the pure build checks it."""
    from appliance.node import node
    if not node.__file__.endswith(".so"):
        return
    for item in items:
        marker = item.get_closest_marker("pure_only")
        if marker is not None:
            what = marker.args[0] if marker.args else "a function of the hot path"
            item.add_marker(pytest.mark.skip(reason=f"pure build only: patches {what}"))
