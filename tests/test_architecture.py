"""The package's layers: imports point one way only, no cycles, no imports hidden in functions, optional
dependencies only through ``landscape.core.optional.require``. The layer order is written here once."""
from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "landscape"

#: lowest first; a module may import modules of its own layer and of the layers before it. "" is the package's
#: root (landscape/__init__.py, the public API), above every layer but the command line.
LAYERS = ("core", "analysis", "engine", "io", "views", "run", "stages", "", "cli")
#: optional dependencies: imported lazily through require(), never by an import statement
OPTIONAL = ("mpi4py", "vtk", "matplotlib", "torchvision", "paraview", "plotly", "transformers")
MAX_LINES = 450


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return ""
    return "cli" if parts[1] == "__main__" else parts[1]


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING" or (
        isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")


def _imports(module: str) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function or class) of every import statement of ``module``."""
    tree = ast.parse(MODULES[module].read_text())
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                continue  # annotations only: never executed
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, nested) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                target = _resolve(module, child)
                for alias in child.names:
                    sub = f"{target}.{alias.name}"
                    found.append((sub if sub in MODULES else target, child.lineno, nested))
            visit(child, inner)

    visit(tree, False)
    return found


def _graph() -> dict[str, set[str]]:
    return {m: {t for t, _, _ in _imports(m) if t in MODULES and t != m} for m in MODULES}


def test_every_module_belongs_to_a_layer():
    unknown = sorted(m for m in MODULES if _layer(m) not in LAYERS)
    assert not unknown, f"modules outside the layers {LAYERS}: {unknown}"


def test_imports_point_down_the_layers():
    wrong = []
    for module in MODULES:
        for target, line, _ in _imports(module):
            if target in MODULES and LAYERS.index(_layer(target)) > LAYERS.index(_layer(module)):
                wrong.append(f"{MODULES[module].relative_to(PACKAGE.parent)}:{line} imports {target} "
                             f"(layer {_layer(target) or 'root'} above {_layer(module) or 'root'})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    graph = _graph()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def strongconnect(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            strongconnect(v)
    assert not cycles, f"import cycles: {cycles}"


def test_imports_at_module_top():
    nested = [f"{MODULES[m].relative_to(PACKAGE.parent)}:{line} imports {t} inside a function or class"
              for m in MODULES for t, line, inner in _imports(m) if inner]
    assert not nested, "\n".join(nested)


@pytest.mark.parametrize("layer", [lay for lay in LAYERS if lay not in ("", "cli")])
def test_layer_packages_re_export_their_modules_public_names(layer):
    package = importlib.import_module(f"landscape.{layer}")
    missing = [f"landscape.{layer}.{m.name}.{n}" for m in pkgutil.iter_modules(package.__path__)
               for n in importlib.import_module(f"landscape.{layer}.{m.name}").__all__ if n not in package.__all__]
    assert not missing, f"add to landscape/{layer}/__init__.py: {missing}"


def test_optional_dependencies_only_through_require():
    direct = [f"{MODULES[m].relative_to(PACKAGE.parent)}:{line} imports {t}" for m in MODULES
              for t, line, _ in _imports(m) if t.split(".")[0] in OPTIONAL]
    assert not direct, "\n".join(direct)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_shape(module):
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    names = [t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
             for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)]
    assert ast.get_docstring(tree) or path.name == "__main__.py", f"{path} has no module docstring"
    assert "__all__" in names or path.name == "__main__.py", f"{path} does not declare __all__"
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path} has {lines} lines; split it by concept (at most {MAX_LINES})"


def test_the_checks_can_fail(tmp_path, monkeypatch):
    """The checks above see what they should: a function-level upward import that closes a cycle."""
    bad = tmp_path / "landscape"
    (bad / "core").mkdir(parents=True)
    (bad / "stages").mkdir()
    (bad / "__init__.py").write_text("")
    (bad / "core" / "__init__.py").write_text("")
    (bad / "stages" / "__init__.py").write_text("")
    (bad / "core" / "low.py").write_text("def f():\n    from ..stages import high\n")
    (bad / "stages" / "high.py").write_text("from ..core import low\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", bad)
    monkeypatch.setattr(__import__(__name__), "MODULES", _modules())
    with pytest.raises(AssertionError, match="layer stages above core"):
        test_imports_point_down_the_layers()
    with pytest.raises(AssertionError, match="import cycles"):
        test_no_import_cycles()
    with pytest.raises(AssertionError, match="inside a function"):
        test_imports_at_module_top()

