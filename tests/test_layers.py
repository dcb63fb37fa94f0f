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
    """The appliance layers `path` imports: `import appliance.x`, `from appliance.x import`,
    `from appliance import x`, relative imports, and importlib calls with a literal name."""
    package = ["appliance", *path.relative_to(ROOT).parent.parts]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""
            module = ".".join(filter(None, [base, node.module or ""]))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module" and node.args \
                and isinstance(node.args[0], ast.Constant):
            names.add(str(node.args[0].value))
    return {name.split(".")[1] for name in names if name.startswith("appliance.")}


@pytest.mark.parametrize("layer", sorted(ABOVE))
def test_no_module_imports_a_layer_above_it(layer):
    wrong = {f"{path.relative_to(ROOT)} imports appliance.{above}"
             for path in (ROOT / layer).rglob("*.py") for above in imported(path) & ABOVE[layer]}
    assert not wrong, sorted(wrong)
