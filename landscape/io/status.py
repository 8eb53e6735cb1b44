"""What a result file holds, in a few lines: the text of ``landscape status`` / ``landscape info``.

Example:
    >>> import tempfile, os, numpy as np
    >>> from landscape.core.grid import Grid
    >>> from landscape.io.surface_file import SurfaceStore
    >>> p = os.path.join(tempfile.mkdtemp(), "s.h5")
    >>> SurfaceStore.open(p, Grid(np.array([0., 1.])), {}).close()
    >>> describe_file(p).splitlines()[0].startswith("surface")
    True
"""
from __future__ import annotations

from pathlib import Path

from .hdf5 import SURFACE_SCHEMA, file_schema
from .surface_file import read_surface
from .trajectory import TrajectoryStore

__all__ = ["describe_file"]


def describe_file(path: str | Path) -> str:
    """A summary of a surface or trajectory file (grid and progress, or checkpoints and metrics)."""
    kind = file_schema(path)
    if kind is None or kind == SURFACE_SCHEMA:  # a missing or unreadable file: the reader raises a clear error
        return read_surface(path).describe()
    return TrajectoryStore(path).describe()
