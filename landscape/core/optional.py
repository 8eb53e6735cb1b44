"""Optional dependencies (mpi4py, vtk, matplotlib, plotly, torchvision), imported lazily through one helper.

Example:
    >>> require("json").__name__
    'json'
"""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

from .errors import DependencyError

__all__ = ["require", "package_file", "EXTRAS", "HINTS"]

EXTRAS = {
    "mpi4py": "mpi",
    "vtk": "vtk",
    "matplotlib": "plot",
    "plotly": "plot",
    "transformers": "hf",
    "safetensors": "hf",
    "xarray": "xarray",
    "lightning": "lightning",
    "gudhi": "topology",
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
        raise DependencyError(
            f"optional dependency '{module}' is not usable here ({type(exc).__name__}: {exc}); "
            f"install it with: {_hint(module.split('.')[0], extra)}"
        ) from exc


def _hint(top: str, extra: str | None) -> str:
    extra = extra or EXTRAS.get(top)
    return f'pip install "landscape[{extra}]"' if extra else HINTS.get(top, f"pip install {top}")


def package_file(package: str, relative: str, extra: str | None = None) -> Path:
    """A data file shipped inside an optional package, found without importing the package (e.g. the
    plotly.js bundle inside plotly); :class:`DependencyError` naming the extra when it is missing.

    Example:
        >>> package_file("json", "__init__.py").name
        '__init__.py'
    """
    spec = importlib.util.find_spec(package)
    path = Path(next(iter(spec.submodule_search_locations or []), "")) / relative if spec else None
    if path is None or not path.is_file():
        raise DependencyError(f"optional dependency '{package}' is not installed here (its file {relative} is "
                              f"needed); install it with: {_hint(package, extra)}")
    return path
