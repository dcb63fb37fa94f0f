"""Layers you can see from the folder tree: a module never imports a layer above its own
(also not inside a function)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1] / "appliance"
# layer -> the layers it must not import
ABOVE = {
    "wire": {"secure", "stream", "config", "limits", "observe", "node", "host", "cli"},
    "secure": {"stream", "config", "node", "host", "cli"},
    "stream": {"config", "node", "host", "cli"},
    "limits": {"node", "host", "cli"},
    "observe": {"node", "host", "cli"},
    "config": {"node", "host", "cli"},
    "node": {"host", "cli"},
    "host": {"cli"},
}


def imported(path: Path) -> set:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return {name.split(".")[1] for name in names if name.startswith("appliance.") and name.count(".") >= 1}


@pytest.mark.parametrize("layer", sorted(ABOVE))
def test_no_module_imports_a_layer_above_it(layer):
    wrong = {f"{path.relative_to(ROOT)} imports appliance.{above}"
             for path in (ROOT / layer).rglob("*.py") for above in imported(path) & ABOVE[layer]}
    assert not wrong, sorted(wrong)
