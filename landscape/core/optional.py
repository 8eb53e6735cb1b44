"""Optional dependencies (mpi4py, vtk, matplotlib, torchvision), imported lazily through one helper.

Example:
    >>> require("json").__name__
    'json'
"""
from __future__ import annotations

import importlib
from types import ModuleType

from .errors import DependencyError

__all__ = ["require", "EXTRAS", "HINTS"]

EXTRAS = {
    "mpi4py": "mpi",
    "vtk": "vtk",
    "matplotlib": "plot",
}
#: modules in no extra, with how to install them instead
HINTS = {
    "torchvision": "pip install --no-deps torchvision==<the release that matches your torch> (an extra would let "
                   "pip replace your torch)",
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
        hint = f'pip install "landscape[{extra}]"' if extra else HINTS.get(top, f"pip install {top}")
        raise DependencyError(
            f"optional dependency '{module}' is not usable here ({type(exc).__name__}: {exc}); "
            f"install it with: {hint}"
        ) from exc
