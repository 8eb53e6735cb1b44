"""The evolution of a convolution layer's filters as a ParaView time series (TensorViz, Chen et al. 2017).

Example:
    >>> export_filter_evolution.__name__
    'export_filter_evolution'
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError
from ..core.optional import require
from .paraview import filters_script, write_script, write_states
from .vtk_export import vtk_numpy, write_pvd, write_vtk

__all__ = ["export_filter_evolution"]


def export_filter_evolution(store: Any, layer: str, out_dir: str | Path, state: bool = False) -> list[Path]:
    """One ``.vtp`` per checkpoint of ``layer``'s weights as boxes (one kh×kw block per filter and input
    channel; height = value; cell arrays ``weight`` and signed RGB ``color``: red positive, blue negative) and a
    ``.pvd`` time series over the optimiser steps, so ParaView plays the evolution, and ``LAYER_filters_view.py``,
    its pvpython view. Colours share one symmetric scale over every frame (the largest |weight| of the series),
    so a filter's colour means the same value at every step. With ``state`` (where pvbatch is installed) also
    ``LAYER_filters.pvsm``, the ParaView state file of that view."""
    vtk = require("vtk", "vtk")
    numpy_to_vtk, numpy_to_vtkIdTypeArray = vtk_numpy()
    name = f"{layer}.weight"
    if name not in store.spec.names:
        raise ConfigError(f"{layer!r} has no weight in the trajectory; layers with weights: "
                          f"{[n[:-7] for n in store.spec.names if n.endswith('.weight')]}")
    shape = store.spec.shapes[store.spec.names.index(name)]
    if len(shape) != 4:
        raise ConfigError(f"{layer!r} is not a 2-D convolution (weight shape {shape})")
    f_, c_, kh, kw = shape
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t = store.table()
    sl = store.spec.slice(name)
    # box corners: filter f's block centred on x = f, input channel c's on y = c (the axes then count filters and
    # channels, not kernel cells), each kernel position a cell of 1/(k+1) inside its block
    ff, cc, ii, jj = np.meshgrid(np.arange(f_), np.arange(c_), np.arange(kh), np.arange(kw), indexing="ij")
    ux, uy = 1.0 / (kw + 1), 1.0 / (kh + 1)
    x0 = (ff - kw * ux / 2 + jj * ux).ravel().astype(float)
    y0 = (cc - kh * uy / 2 + (kh - 1 - ii) * uy).ravel().astype(float)
    n = x0.size
    corner = np.array([[0, 0, 0], [.9, 0, 0], [.9, .9, 0], [0, .9, 0], [0, 0, 1], [.9, 0, 1], [.9, .9, 1], [0, .9, 1]])
    corner = corner * np.array([ux, uy, 1.0])
    faces = np.array([[0, 3, 2, 1], [4, 5, 6, 7], [0, 1, 5, 4], [1, 2, 6, 5], [2, 3, 7, 6], [3, 0, 4, 7]])
    conn = (faces[None] + 8 * np.arange(n)[:, None, None]).reshape(-1)
    written = []
    frames = [store.vector(k)[sl].double().numpy() for k in range(len(t["step"]))]
    scale = max(max((float(np.abs(v).max()) for v in frames), default=0.0), 1e-12)  # one scale for every frame
    for k, vals in enumerate(frames):
        pts = np.repeat(np.stack([x0, y0, np.zeros(n)], 1), 8, 0) + np.tile(corner, (n, 1))
        pts[:, 2] *= np.repeat(vals, 8)  # height = value (boxes hang down for negative weights)
        poly = vtk.vtkPolyData()
        p = vtk.vtkPoints()
        p.SetData(numpy_to_vtk(pts, deep=True))
        poly.SetPoints(p)
        cells = vtk.vtkCellArray()
        cells.SetData(numpy_to_vtkIdTypeArray(np.arange(0, 4 * 6 * n + 1, 4, dtype=np.int64), deep=True),
                      numpy_to_vtkIdTypeArray(conn.astype(np.int64), deep=True))
        poly.SetPolys(cells)
        w = numpy_to_vtk(np.repeat(vals, 6), deep=True)
        w.SetName("weight")
        poly.GetCellData().AddArray(w)
        mag = np.clip(np.abs(vals) / scale, 0, 1)
        rgb = np.where(vals[:, None] >= 0, np.stack([np.full(n, 255), 255 * (1 - mag), 255 * (1 - mag)], 1),
                       np.stack([255 * (1 - mag), 255 * (1 - mag), np.full(n, 255)], 1)).astype(np.uint8)
        col = numpy_to_vtk(np.repeat(rgb, 6, 0), deep=True, array_type=vtk.VTK_UNSIGNED_CHAR)
        col.SetName("color")
        poly.GetCellData().AddArray(col)
        written.append(write_vtk(poly, out_dir / f"{layer}_filters_{k:04d}.vtp"))
    written.append(write_pvd(list(zip(t["step"].tolist(), written)), out_dir / f"{layer}_filters.pvd"))
    written.append(write_script(filters_script(f"{layer}_filters.pvd", scale, filters=f_, channels=c_),
                                out_dir / f"{layer}_filters_view.py"))
    if state:
        written += write_states([written[-1]])
    return written
