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
import numpy as np

from ..core.errors import StoreError

__all__ = ["open_hdf5", "file_schema", "unreadable", "label_dimension", "SURFACE_SCHEMA", "PATH_SCHEMA", "SURFACE_VERSION", "TRAJECTORY_SCHEMA",
           "TRAJECTORY_VERSION", "CORRELATION_SCHEMA"]

SURFACE_SCHEMA = "landscape.surface"
PATH_SCHEMA = "landscape.path"
SURFACE_VERSION = 1
TRAJECTORY_SCHEMA = "landscape.trajectory"
TRAJECTORY_VERSION = 1
CORRELATION_SCHEMA = "landscape.correlation"


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


def label_dimension(group: h5py.Group, name: str, scale: h5py.Dataset | None = None) -> h5py.Dataset:
    """Name the first axis of every dataset in ``group`` whose length is the scale's: ``scale`` if given, else
    a new index dataset ``group/name`` (0, 1, ...) made an HDF5 dimension scale. netCDF readers (xarray's
    h5netcdf engine) then see dimension ``name`` there instead of borrowing a same-named dimension of the root.

    Example:
        >>> import tempfile, numpy as np
        >>> with h5py.File(tempfile.mkdtemp() + "/x.h5", "w") as f:
        ...     g = f.create_group("trajectory")
        ...     g["alpha"] = np.zeros(3)
        ...     _ = label_dimension(g, "checkpoint")
        ...     g["alpha"].dims[0][0].name
        '/trajectory/checkpoint'
    """
    datasets = [d for d in group.values() if isinstance(d, h5py.Dataset) and d.ndim >= 1]
    if scale is None:
        n = max((d.shape[0] for d in datasets), default=0)
        scale = group.create_dataset(name, data=np.arange(n, dtype=np.int64), maxshape=(None,))
    scale.make_scale(name)
    for d in datasets:
        if d.name != scale.name and d.shape[0] == scale.shape[0] and not d.dims[0]:
            d.dims[0].attach_scale(scale)
    return scale
