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


# inside the runtime: the parts of node/ each part may import (modules of node/ itself, and
# the core they hold, are open to all); runtime.py wires them and control/ serves them
NODE_PARTS = {
    "transport": set(),
    "channels": {"transport"},
    "project": {"transport", "channels"},
    "relays": {"transport", "channels", "project"},
    "portals": {"transport"},
    "control": {"transport", "channels", "project", "relays", "portals", "resolver"},
}
WIRING = {"runtime", "resolver", "control"}  # no part below them imports these


def imported_modules(path: Path) -> set:
    """The appliance modules `path` imports: `import appliance.x`, `from appliance.x import`,
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
    return {name for name in names if name.startswith("appliance.")}


def imported(path: Path) -> set:
    """The appliance layers `path` imports."""
    return {name.split(".")[1] for name in imported_modules(path)}


@pytest.mark.parametrize("layer", sorted(ABOVE))
def test_no_module_imports_a_layer_above_it(layer):
    wrong = {f"{path.relative_to(ROOT)} imports appliance.{above}"
             for path in (ROOT / layer).rglob("*.py") for above in imported(path) & ABOVE[layer]}
    assert not wrong, sorted(wrong)


@pytest.mark.parametrize("part", sorted(NODE_PARTS))
def test_a_part_of_the_node_imports_only_the_parts_below_it(part):
    parts = set(NODE_PARTS) | WIRING
    wrong = set()
    for path in (ROOT / "node" / part).rglob("*.py"):
        for name in imported_modules(path):
            pieces = name.split(".")
            if pieces[:2] == ["appliance", "node"] and len(pieces) > 2 and pieces[2] in parts - {part} \
                    and pieces[2] not in NODE_PARTS[part]:
                wrong.add(f"{path.relative_to(ROOT)} imports appliance.node.{pieces[2]}")
    assert not wrong, sorted(wrong)


def test_no_package_folder_holds_more_than_16_modules():
    crowded = {str(folder.relative_to(ROOT)): n for folder in [ROOT, *ROOT.rglob("*/")] if folder.is_dir()
               and (n := len([p for p in folder.glob("*.py") if p.name != "__init__.py"])) > 16}
    assert not crowded, crowded
