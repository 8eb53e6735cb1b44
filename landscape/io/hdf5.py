"""Opening landscape's HDF5 files, and the schema names every file carries in its ``schema`` attribute.

Example:
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.h5")
    >>> with open_hdf5(p, "w") as f:
    ...     f.attrs["schema"] = SURFACE_SCHEMA
    >>> file_schema(p)
    'landscape.surface'
"""
from __future__ import annotations

import time
from pathlib import Path

import h5py

from ..core.errors import StoreError

__all__ = ["open_hdf5", "file_schema", "unreadable", "SURFACE_SCHEMA", "PATH_SCHEMA", "SURFACE_VERSION", "TRAJECTORY_SCHEMA",
           "TRAJECTORY_VERSION"]

SURFACE_SCHEMA = "landscape.surface"
PATH_SCHEMA = "landscape.path"
SURFACE_VERSION = 1
TRAJECTORY_SCHEMA = "landscape.trajectory"
TRAJECTORY_VERSION = 1


def open_hdf5(path: str | Path, mode: str = "r", wait_seconds: float = 30.0) -> h5py.File:
    """Open a landscape HDF5 file. Readers take no lock, so a file that a run is writing can be inspected; a
    writer that finds the file locked by another process (an h5py session or viewer left open on it) retries
    for ``wait_seconds``, then raises a StoreError naming the lock. Other OSErrors reach the caller.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "x.h5")
        >>> with open_hdf5(p, "w") as f:
        ...     f.attrs["a"] = 1
        >>> with open_hdf5(p) as f:
        ...     int(f.attrs["a"])
        1
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return h5py.File(path, mode, locking=(mode != "r"))
        except OSError as exc:
            if "unable to lock file" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise StoreError(f"{path}: another process holds a lock on the file ({exc}); close it there "
                                 "(h5py sessions, viewers) and run again") from exc
            time.sleep(0.05)


def file_schema(path: str | Path) -> str | None:
    """The ``schema`` attribute of an HDF5 file, or None when the file is missing, not HDF5 or has none."""
    try:
        with open_hdf5(path) as f:
            value = f.attrs.get("schema")
    except OSError:
        return None
    return None if value is None else str(value)


def unreadable(path: str | Path, exc: BaseException, redo: str) -> StoreError:
    """The error for a file that HDF5 cannot read: what failed, that a file being written at this instant can
    be read again, and what to do (``redo``) when it is damaged.

    Example:
        >>> str(unreadable("s.h5", OSError("bad signature"), "compute the surface again")).split(";")[0]
        's.h5: cannot be read as HDF5 (bad signature)'
    """
    return StoreError(f"{path}: cannot be read as HDF5 ({exc}); the file is truncated or corrupted (or a run was "
                      f"writing it at this instant: try again); move it away and {redo}")
