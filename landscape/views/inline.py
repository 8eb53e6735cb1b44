"""Figures and arrays of a surface for a notebook: a matplotlib ``Figure`` made without pyplot (the caller's
backend is left alone; Jupyter shows the figure inline) and an ``xarray.Dataset``.

Example:
    >>> import tempfile, numpy as np
    >>> from landscape.core.grid import Grid
    >>> from landscape.io.surface_file import SurfaceStore, read_surface
    >>> p = tempfile.mkdtemp() + "/s.h5"
    >>> st = SurfaceStore.open(p, Grid(np.linspace(-1, 1, 5), np.linspace(-1, 1, 4)), {"k": 1})
    >>> a, b = st.grid.coords(np.arange(20)); st.write(np.arange(20), 1 + a**2 + b**2, 1 - a**2 / 2); st.close()
    >>> fig = surface_figure(read_surface(p))
    >>> [ax.get_title() for ax in fig.axes if ax.get_title()]
    ['loss']
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..core.errors import ConfigError
from ..core.optional import require
from ..io.surface_file import SurfaceData
from .surface_plots import axis_labels, color_norm, levels

__all__ = ["surface_figure", "surface_xarray", "INLINE_KINDS"]

INLINE_KINDS = ("contour", "filled", "heatmap", "3d")


def surface_figure(s: SurfaceData, kind: str = "contour", log: bool = False, ax: Any = None) -> Any:
    """The loss of ``s`` as a matplotlib figure (``kind`` of :data:`INLINE_KINDS`; a line for 1-D surfaces), drawn
    into ``ax`` when given."""
    if kind not in INLINE_KINDS:
        raise ConfigError(f"plot kind: expected one of {list(INLINE_KINDS)}, got {kind!r}")
    figure = require("matplotlib.figure", "plot")
    require("matplotlib.backends.backend_agg", "plot")
    xl, yl = axis_labels(s)
    if ax is None:
        fig = figure.Figure(figsize=(6, 4.8), layout="constrained")
        ax = fig.add_subplot(projection="3d" if kind == "3d" and s.beta is not None else None)
    else:
        fig = ax.figure
    vals = np.ma.masked_invalid(np.where(s.done.astype(bool), s.loss, np.nan))
    if s.beta is None:
        ax.plot(s.alpha, vals, "-o", ms=3)
        ax.set_xlabel(xl)
        ax.set_ylabel("loss")
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        return fig
    A, B = np.meshgrid(s.alpha, s.beta, indexing="ij")
    if kind == "3d":
        z = np.log10(vals) if log else vals
        ax.plot_surface(A, B, np.ma.filled(z, np.nan), cmap="viridis", linewidth=0)
        ax.set_zlabel("log10 loss" if log else "loss", labelpad=8)
    elif kind == "heatmap":
        im = ax.pcolormesh(A, B, vals, shading="nearest", cmap="viridis", norm=color_norm(vals, True, None))
        fig.colorbar(im, ax=ax, label="loss (log colour scale)")
    else:
        lv = levels(vals, True, 20)
        if kind == "contour":
            cs = ax.contour(A, B, vals, levels=lv, norm=color_norm(vals, log, lv), cmap="viridis")
            ax.clabel(cs, cs.levels[::2], inline=True, fontsize=7, fmt="%.3g")
        else:
            cs = ax.contourf(A, B, vals, levels=lv, norm=color_norm(vals, log, lv), cmap="viridis")
            fig.colorbar(cs, ax=ax, label="loss")
    ax.set_xlabel(xl)
    ax.set_ylabel(yl)
    ax.set_title("loss")
    return fig


def surface_xarray(s: SurfaceData) -> Any:
    """``loss`` (and ``accuracy`` unless the task is regression) over ``alpha`` (and ``beta``), NaN where not
    computed; the file's attributes as the dataset's.

    Example:
        >>> surface_xarray.__name__
        'surface_xarray'
    """
    xr = require("xarray", "xarray")
    dims = ("alpha",) if s.beta is None else ("alpha", "beta")
    coords = {"alpha": s.alpha} if s.beta is None else {"alpha": s.alpha, "beta": s.beta}
    done = s.done.astype(bool)
    arrays = {"loss": (dims, np.where(done, s.loss, np.nan))}
    if s.attrs.get("task") != "regression":
        arrays["accuracy"] = (dims, np.where(done, s.accuracy, np.nan))
    attrs = {k: v for k, v in s.attrs.items() if isinstance(v, (str, int, float))}
    return xr.Dataset(arrays, coords=coords, attrs=attrs)
