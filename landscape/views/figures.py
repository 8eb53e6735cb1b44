"""Every figure of a list of result files, each drawn by the view of its kind.

Example:
    >>> plot_files([])
    []
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..io.hdf5 import CURVATURE_SCHEMA, PATH_SCHEMA, TOPOLOGY_SCHEMA, file_schema
from .curvature_plots import plot_curvature_maps, plot_spectrum
from .path_plots import plot_paths
from .surface_plots import FIGURES, plot_surface
from .topology_plots import plot_topology

__all__ = ["plot_files"]


def plot_files(files: Sequence[str | Path], out_dir: str | Path | None = None, formats: Sequence[str] = ("png", "pdf"),
               log: bool = False, zmax: float | None = None, figures: Sequence[str] = FIGURES, *,
               vmin: float | None = None, vmax: float | None = None, n_levels: int = 20, equal_aspect: bool = False,
               path_y: str = "log") -> list[Path]:
    """The figures of several result files: path files together (:func:`~landscape.views.path_plots.plot_paths`),
    each surface file on its own (:func:`~landscape.views.surface_plots.plot_surface`, and its curvature maps),
    a curvature file's spectrum. ``vmin``/``vmax``/``n_levels``/``equal_aspect`` control the surface figures,
    ``path_y`` the loss axis of path figures (log, linear or clip). Returns the files written."""
    path_files = [f for f in files if file_schema(f) == PATH_SCHEMA]
    written = plot_paths(path_files, out_dir, formats, y_scale=path_y) if path_files else []
    for f in files:
        if f in path_files:
            continue
        if file_schema(f) == CURVATURE_SCHEMA:
            written += plot_spectrum(f, out_dir, formats)
            continue
        if file_schema(f) == TOPOLOGY_SCHEMA:
            written += plot_topology(f, out_dir, formats)
            continue
        written += plot_surface(f, out_dir, formats, log, zmax, figures, vmin=vmin, vmax=vmax, n_levels=n_levels,
                                equal_aspect=equal_aspect)
        written += plot_curvature_maps(f, out_dir, formats)
    return written
