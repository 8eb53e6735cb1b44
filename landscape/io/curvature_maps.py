"""Curvature maps beside a surface's loss: ``/lambda_max``, ``/lambda_min``, ``/trace`` [alpha, beta] with their
own done mask ``/curvature_done``, written by a :class:`~landscape.io.surface_file.SurfaceStore` over those
datasets, so they resume and flush like the loss. The settings they were computed with are the file's
``curvature_inputs`` attribute (JSON); other settings on an existing map are refused.

Example:
    >>> import tempfile, os
    >>> from landscape.core.grid import Grid
    >>> from landscape.io.surface_file import SurfaceStore, read_surface
    >>> p = os.path.join(tempfile.mkdtemp(), "s.h5")
    >>> SurfaceStore.open(p, Grid(np.array([0.0, 1.0]), np.array([0.0])), {"model": "toy"}).close()
    >>> with open_maps(p, ["lambda_max"], {"tol": 1e-3}) as m:
    ...     m.write(np.array([0, 1]), np.array([2.0, 3.0]))
    >>> read_surface(p).maps["lambda_max"].tolist()
    [[2.0], [3.0]]
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..core.errors import StoreError
from .hdf5 import writes_to
from .locks import WriterLock
from ..engine.curvature_map import MAPS
from .surface_file import CURVATURE_DONE, SurfaceStore, _axes, diff_inputs, open_checked

__all__ = ["open_maps"]


def open_maps(path: str | Path, quantities: Sequence[str], inputs: Mapping[str, Any], flush_every: int = 8
              ) -> SurfaceStore:
    """The writer of a surface file's curvature maps (created on first use). The file's loss and accuracy are
    not touched."""
    path = Path(path)
    bad = [q for q in quantities if q not in MAPS]
    if bad or not quantities:
        raise StoreError(f"curvature maps: expected some of {list(MAPS)}, got {list(quantities)}")
    inputs = json.loads(json.dumps({**dict(inputs), "maps": list(quantities)}, default=str))
    lock = WriterLock(path).acquire()
    try:
        f = open_checked(path, "r+")
        try:
            stored = f.attrs.get("curvature_inputs")
            if stored is not None:
                diffs = diff_inputs(json.loads(stored), inputs)
                if diffs:
                    raise StoreError(f"{path} holds curvature maps computed with other settings; refusing to resume "
                                     "or overwrite them:\n  " + "\n  ".join(diffs) +
                                     "\nUse another surface file, or the original settings")
            else:
                with writes_to(path):
                    a0, a1 = _axes(f)
                    scales = [f[a0]] + ([f[a1]] if a1 in f else [])
                    shape = f["loss"].shape
                    for name, dtype, fill in [(q, "f8", np.nan) for q in quantities] + [(CURVATURE_DONE, "u1", 0)]:
                        if name in f:
                            del f[name]
                        ds = f.create_dataset(name, shape, dtype, fillvalue=fill)
                        ds[...] = fill
                        for axis, scale in enumerate(scales):
                            ds.dims[axis].attach_scale(scale)
                    f.attrs["curvature_inputs"] = json.dumps(inputs, sort_keys=True)
                    f.flush()
            store = SurfaceStore(path, f, flush_every, 10.0, fields=tuple(quantities), done=CURVATURE_DONE,
                                 status_attr="curvature_status")
        except BaseException:
            f.close()
            raise
    except BaseException:
        lock.release()
        raise
    store._lock = lock
    return store
