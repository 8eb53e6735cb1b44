"""Path files (``landscape.path``): the surface file's layout with axes ``(item, alpha)``, and
``/items/{name,level,distance,numel}`` describing what each row moves.

Example:
    >>> read_path.__name__
    'read_path'
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .hdf5 import open_hdf5
from .surface_file import read_surface

__all__ = ["read_path"]


def _strings(values: Any) -> list[str]:
    return [x.decode() if isinstance(x, bytes) else str(x) for x in values]


def read_path(path: str | Path) -> dict[str, Any]:
    """A path file: ``alpha``, ``loss``/``accuracy``/``done`` [items, alpha], item ``name``/``level``/``distance``,
    attrs."""
    s = read_surface(path)
    with open_hdf5(path) as f:
        names, levels, dist = _strings(f["items/name"][:]), _strings(f["items/level"][:]), f["items/distance"][:]
    return {"alpha": s.beta, "loss": s.loss, "accuracy": s.accuracy, "done": s.done, "name": names, "level": levels,
            "distance": dist, "kind": str(s.attrs.get("kind", "?")), "attrs": s.attrs, "inputs": s.inputs,
            "path": Path(path)}
