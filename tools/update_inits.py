"""Regenerate the re-exports of each layer package's ``__init__.py`` from its modules' ``__all__``.

Keeps each ``__init__``'s docstring and the order of the modules it already imports; modules it does not import
yet are added after the modules of the same package they import. ``tests/test_architecture.py`` checks the
result (every public name re-exported).

    python tools/update_inits.py          # rewrite landscape/{core,analysis,...}/__init__.py
    python tools/update_inits.py --check  # exit 1 if any would change
"""
from __future__ import annotations

import argparse
import ast
import logging
import sys
import textwrap
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "landscape"
LAYERS = ("core", "analysis", "engine", "io", "views", "run", "stages")
log = logging.getLogger("update_inits")


def _public(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "__all__" and node.value:
            return list(ast.literal_eval(node.value))
    return []


def _siblings(path: Path, names: set[str]) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module in names:
            out.add(node.module)
    return out


def render(layer: str) -> str:
    folder = PACKAGE / layer
    init = folder / "__init__.py"
    tree = ast.parse(init.read_text())
    doc = ast.get_docstring(tree, clean=False) or f"The {layer} layer."
    modules = sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__")
    order = [n.module for n in tree.body if isinstance(n, ast.ImportFrom) and n.level == 1 and n.module in modules]
    rest = [m for m in modules if m not in order]
    while rest:  # each new module after the package's modules it imports
        ready = [m for m in rest if _siblings(folder / f"{m}.py", set(modules)) <= set(order) | {m}] or rest[:1]
        order.append(ready[0])
        rest.remove(ready[0])
    lines = [f'"""{doc}"""', "from __future__ import annotations", ""]
    every: list[str] = []
    for m in order:
        names = _public(folder / f"{m}.py")
        if not names:
            continue
        every += names
        one = f"from .{m} import {', '.join(names)}"
        if len(one) <= 120:
            lines.append(one)
        else:
            body = textwrap.fill(", ".join(names) + ")", 116, initial_indent="    ", subsequent_indent="    ")
            lines += [f"from .{m} import (", body]
    lines += ["", "__all__ = [",
              textwrap.fill(", ".join(f'"{n}"' for n in every) + ",", 116, initial_indent="    ",
                            subsequent_indent="    "), "]", ""]
    return "\n".join(lines)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only report the packages that would change")
    args = p.parse_args()
    changed = []
    for layer in LAYERS:
        init = PACKAGE / layer / "__init__.py"
        new = render(layer)
        if new != init.read_text():
            changed.append(layer)
            if not args.check:
                init.write_text(new)
    log.info("%s: %s", "would change" if args.check else "rewrote", ", ".join(changed) or "nothing")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
