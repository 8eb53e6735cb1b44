"""Optional dependencies (mpi4py, vtk, matplotlib, torchvision), imported lazily through one helper.

Example:
    >>> require("json").__name__
    'json'
"""
from __future__ import annotations

import importlib
from types import ModuleType

from .errors import DependencyError

__all__ = ["require", "EXTRAS"]

EXTRAS = {
    "mpi4py": "mpi",
    "vtk": "vtk",
    "matplotlib": "plot",
    "torchvision": "vision",
}


def require(module: str, extra: str | None = None) -> ModuleType:
    """Import an optional dependency or raise :class:`DependencyError` naming the extra.

    Example:
        >>> require("json").__name__
        'json'
    """
    try:
        return importlib.import_module(module)
    except (ImportError, RuntimeError, OSError) as exc:  # torchvision raises RuntimeError on a CUDA/CPU mismatch
        top = module.split(".")[0]
        extra = extra or EXTRAS.get(top)
        hint = f'pip install "landscape[{extra}]"' if extra else f"pip install {top}"
        raise DependencyError(
            f"optional dependency '{module}' is not usable here ({type(exc).__name__}: {exc}); "
            f"install it with: {hint}"
        ) from exc
