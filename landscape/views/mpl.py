"""matplotlib, imported lazily through :func:`~landscape.core.optional.require` with the Agg backend, and
saving figures in several formats.

Example:
    >>> import tempfile
    >>> plt = pyplot()
    >>> fig = plt.figure()
    >>> [p.suffix for p in save_figure(fig, tempfile.mkdtemp(), "empty", ("png", "pdf"))]
    ['.png', '.pdf']
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..core.optional import require
from ..io.hdf5 import replaced_atomically

__all__ = ["pyplot", "save_figure", "savefig"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (the ``plot`` extra names the install)."""
    mpl = require("matplotlib", "plot")
    mpl.use("Agg")
    return require("matplotlib.pyplot", "plot")


def save_figure(fig: Any, out_dir: str | Path, name: str, formats: Sequence[str], dpi: int = 150) -> list[Path]:
    """Save ``fig`` as ``out_dir/name.<fmt>`` for each format (the folder made if missing), close it, and return
    the files."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    out = [Path(out_dir) / f"{name}.{fmt}" for fmt in formats]
    for p in out:
        savefig(fig, p, dpi)
    pyplot().close(fig)
    return out


def savefig(fig: Any, path: str | Path, dpi: int = 150) -> Path:
    """``fig.savefig(path)``; a full or read-only disk gives a clear error naming the file."""
    path = Path(path)
    with replaced_atomically(path) as tmp:  # a failed write (a full disk) leaves no partial figure
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or None)
    return path
