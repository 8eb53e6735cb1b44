"""Figures of surface files with matplotlib (PNG and PDF).

For a 2-D surface: ``*_contour`` (labelled contour lines), ``*_filled`` (filled contours), ``*_heatmap``
(with colour bars) and ``*_3d`` (3-D surface), each with a loss and an accuracy panel and the projected
trajectory overlaid when the file holds one; for a 1-D surface ``*_line``. Axis labels name the
directions and their normalisation (or the explained variance of PCA directions).

Example:
    >>> import tempfile, numpy as np
    >>> from landscape.core.grid import Grid
    >>> from landscape.io.surface_file import SurfaceStore
    >>> p = tempfile.mkdtemp() + "/s.h5"
    >>> st = SurfaceStore.open(p, Grid(np.linspace(-1, 1, 5), np.linspace(-1, 1, 4)), {"k": 1})
    >>> a, b = st.grid.coords(np.arange(20)); st.write(np.arange(20), a**2 + b**2, 1 - a**2 / 2); st.close()
    >>> sorted(x.name for x in plot_surface(p, formats=("png",)))[:2]
    ['s_3d.png', 's_contour.png']
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.errors import ConfigError
from ..core.optional import require
from ..io.surface_file import SurfaceData, read_projected_path, read_projections, read_surface
from .mpl import log_tick_values, plain_number, pyplot, savefig
from .overlay import path_to_draw, surface_height

__all__ = ["plot_surface", "plot_problems", "cell_extent", "axis_labels", "levels", "color_norm", "plain_ticks",
           "FIGURES"]

_log = logging.getLogger(__name__)

FIGURES = ("contour", "filled", "heatmap", "3d")


def axis_labels(s: SurfaceData) -> tuple[str, str]:
    """Labels of the alpha and beta axes from how the directions were made.

    Example:
        >>> axis_labels(SurfaceData(None, None, None, None, None, None, {}, {"directions": "random",
        ...             "norm": "filter"}))
        ('α  (random direction d₁, filter-normalised)', 'β  (random direction d₂, filter-normalised)')
    """
    inp = s.inputs
    kind = inp.get("directions", "random")
    if "explained_variance" in s.attrs:
        ev = json.loads(s.attrs["explained_variance"]) if isinstance(s.attrs["explained_variance"], str) \
            else list(s.attrs["explained_variance"])
        return tuple(f"PC{k + 1}  ({100 * ev[k]:.1f}% of variance)" for k in range(2))  # type: ignore[return-value]
    if kind == "checkpoints":
        return (f"α  (towards {inp.get('target1', 'θ₁')})", f"β  (towards {inp.get('target2', 'θ₂')})")
    if kind == "hessian":
        lam = list(inp.get("eigenvalues") or [])
        names = ("λmax", "λmin") if inp.get("hessian_pair") == "extremes" else ("λ₁", "λ₂")
        return tuple(f"{axis}  (Hessian eigenvector, {name} = {lam[k]:.4g})" if k < len(lam) else
                     f"{axis}  (Hessian eigenvector)" for k, (axis, name) in enumerate(zip("αβ", names)))  # type: ignore
    norm = inp.get("norm", "none")
    suffix = f", {norm}-normalised" if norm not in (None, "none") else ""
    what = "random direction" if kind == "random" else "direction"
    return f"α  ({what} d₁{suffix})", f"β  ({what} d₂{suffix})"


def _title(s: SurfaceData) -> str:
    inp = s.inputs
    data = inp.get("data", {})
    dname = data.get("name") if isinstance(data, dict) else data
    n, total = int(s.done.sum()), s.done.size
    partial = f" — partial {n}/{total} points" if n < total else ""
    ppl = ""
    if s.attrs.get("task") == "language" and (s.done.astype(bool) & np.isfinite(s.loss)).any():
        low = float(np.min(s.loss[s.done.astype(bool) & np.isfinite(s.loss)]))
        ppl = f"; lowest loss {low:.4g} per token (perplexity {np.exp(min(low, 700.0)):.4g})"
    kinds = {"random": f"random directions ({inp.get('norm', '?')}-normalised, seed {inp.get('seed', '?')})",
             "pca": "the trajectory's principal components", "hessian": "the Hessian's eigenvectors",
             "checkpoints": "checkpoint differences", "given": "given directions"}
    plane = kinds.get(str(inp.get("directions")), f"{inp.get('directions')} directions") \
        if inp.get("directions") else ""
    centre = str(inp.get("center", "?"))
    centre = Path(centre.split(":")[0]).name + (":" + centre.split(":", 1)[1] if ":" in centre else "")
    return (f"{inp.get('model', '?')} on {dname} ({inp.get('split', '?')}), centre {centre}"
            f"{', plane of ' + plane if plane else ''}{partial}{ppl}")


def _overlay_others(ax: Any, others: dict[str, dict[str, np.ndarray]]) -> None:
    for c, (label, t) in enumerate(others.items()):
        ax.plot(t["alpha"], t["beta"], "-^", ms=3, lw=1.2, color=("deepskyblue", "orange", "lime", "magenta")[c % 4],
                label=label, zorder=4)
        ax.plot(t["alpha"][-1], t["beta"][-1], "*", ms=10, mec="black", color="white", zorder=5)
    if others:
        ax.legend(loc="best", fontsize=7)


def _overlay(ax: Any, traj: dict[str, np.ndarray] | None) -> None:
    if traj is None:
        return
    a, b = traj["alpha"], traj["beta"]
    ax.plot(a, b, "-", color="white", lw=2.5, zorder=3)
    ax.plot(a, b, "-o", color="crimson", lw=1.2, ms=3, zorder=4, label="trajectory")
    ax.plot(a[0], b[0], "s", color="black", ms=7, zorder=5, label="start")
    ax.plot(a[-1], b[-1], "*", color="gold", mec="black", ms=12, zorder=5, label="end")
    if "epoch" in traj:
        step = max(1, len(a) // 8)
        for k in range(0, len(a), step):
            ax.annotate(f"{traj['epoch'][k]:g}", (a[k], b[k]), textcoords="offset points", xytext=(4, 4),
                        fontsize=7, zorder=6)
    ax.legend(loc="best", fontsize=7)


def _panels(s: SurfaceData, log: bool, zmax: float | None) -> list[tuple[str, np.ndarray, bool]]:
    loss = np.ma.masked_invalid(s.loss)
    if zmax is not None:
        loss = np.ma.masked_greater(loss, zmax)
    panels = [("loss", loss, log)]
    if np.isfinite(s.accuracy).any():
        panels.append(("accuracy", np.ma.masked_invalid(s.accuracy), False))
    return panels


def color_norm(values: np.ndarray, log: bool, levels_: np.ndarray | None = None, vmin: float | None = None,
               vmax: float | None = None, extend: str = "neither") -> Any:
    """The matplotlib colour normalisation matching how a figure spaces its values: given contour ``levels_``, a
    ``BoundaryNorm`` on them (each band its own colour, however the levels are spaced: geometric levels with a
    linear norm leave the whole basin one shade); else logarithmic when ``log``, linear otherwise, over the finite
    values clipped to [vmin, vmax].

    Example:
        >>> n = color_norm(np.array([0.1, 10.0]), False, np.geomspace(0.1, 10.0, 5))
        >>> [int(n(v)) for v in (0.11, 0.5, 5.0)]  # colour-map indices: the bands spread over the whole map
        [0, 85, 255]
    """
    colors = require("matplotlib.colors", "plot")
    if levels_ is not None:
        return colors.BoundaryNorm(levels_, ncolors=256, extend=extend)
    v = values.compressed() if np.ma.isMaskedArray(values) else values[np.isfinite(values)]
    lo = vmin if vmin is not None else (float(v.min()) if v.size else 0.0)
    hi = vmax if vmax is not None else (float(v.max()) if v.size else 1.0)
    if log and (v > 0).any():
        pos = v[v > 0]
        return colors.LogNorm(vmin if vmin is not None and vmin > 0 else pos.min(), hi if hi > 0 else pos.max())
    return colors.Normalize(lo, hi)


def log_colour_scale(values: np.ndarray, ratio: float = 3.0) -> bool:
    """Whether positive values span ``ratio`` times their minimum or more: a linear colour scale then leaves the
    low region (a basin) one shade.

    Example:
        >>> [log_colour_scale(np.array(v)) for v in ([0.16, 0.3, 4.4], [2.0, 2.5], [-1.0, 5.0])]
        [True, False, False]
    """
    v = values.compressed() if np.ma.isMaskedArray(values) else values[np.isfinite(values)]
    return bool(v.size) and float(v.min()) > 0 and float(v.max()) >= ratio * float(v.min())


def plain_ticks(colorbar: Any) -> None:
    """Colour-bar tick labels as plain numbers (``0.37``, not ``3.69877×10⁻¹``); a log colour bar gets ticks at
    1-2-5 steps, so it is labelled even when it spans less than a decade."""
    ticker = require("matplotlib.ticker", "plot")
    colors = require("matplotlib.colors", "plot")
    if isinstance(colorbar.norm, colors.LogNorm):
        colorbar.set_ticks(log_tick_values(colorbar.norm.vmin, colorbar.norm.vmax))
    fmt = ticker.FuncFormatter(lambda v, _: plain_number(v))
    for axis in (colorbar.ax.yaxis, colorbar.ax.xaxis):
        axis.set_major_formatter(fmt)
        axis.set_minor_formatter(ticker.NullFormatter())


def levels(values: np.ndarray, log: bool, n: int = 20, vmin: float | None = None, vmax: float | None = None
           ) -> np.ndarray:
    """``n`` contour levels over the finite values (or [vmin, vmax]): geometric when ``log`` and all are positive,
    else linear.

    Example:
        >>> levels(np.array([1.0, 100.0]), True, 3).tolist()
        [1.0, 10.0, 100.0]
        >>> levels(np.array([1.0, 100.0]), False, 3, vmax=11.0).tolist()
        [1.0, 6.0, 11.0]
    """
    v = values.compressed() if np.ma.isMaskedArray(values) else values[np.isfinite(values)]
    lo = vmin if vmin is not None else (float(v.min()) if v.size else 0.0)
    hi = vmax if vmax is not None else (float(v.max()) if v.size else 0.0)
    if hi <= lo:
        return np.array([lo, lo + max(abs(lo) * 1e-6, 1e-9)])
    if log and lo > 0:
        return np.geomspace(lo, hi, n)
    return np.linspace(lo, hi, n)


def cell_extent(axis: np.ndarray) -> tuple[float, float] | None:
    """The outer edges of the cells centred on an evenly spaced ``axis`` (half a step beyond each end), or None
    when it is not evenly spaced.

    Example:
        >>> cell_extent(np.array([0.0, 1.0, 2.0])), cell_extent(np.array([0.0, 1.0, 3.0]))
        ((-0.5, 2.5), None)
    """
    steps = np.diff(axis)
    if len(axis) < 2 or not np.allclose(steps, steps[0], rtol=1e-6, atol=0):
        return None
    return float(axis[0] - steps[0] / 2), float(axis[-1] + steps[0] / 2)


def _heatmap(ax: Any, s: SurfaceData, vals: np.ndarray, norm: Any) -> Any:
    """One cell per grid point: an image on evenly spaced grids (a million cells draw in a second and stay one
    embedded image in a PDF), else a mesh, rasterised when large."""
    ex, ey = cell_extent(s.alpha), cell_extent(s.beta)
    if ex is not None and ey is not None:
        return ax.imshow(np.ma.asarray(vals).T, origin="lower", aspect="auto", interpolation="nearest",
                         extent=(*ex, *ey), norm=norm, cmap="viridis")
    A, B = np.meshgrid(s.alpha, s.beta, indexing="ij")
    return ax.pcolormesh(A, B, vals, shading="nearest", norm=norm, cmap="viridis", rasterized=vals.size > 10_000)


def plot_problems(formats: Sequence[str] = ("png",), zmax: float | None = None, vmin: float | None = None,
                  vmax: float | None = None, n_levels: int = 20) -> list[str]:
    """What is wrong with plot options, all at once.

    Example:
        >>> plot_problems(("gif",), vmin=2.0, vmax=1.0, n_levels=1)  # doctest: +NORMALIZE_WHITESPACE
        ["plot formats: expected png, pdf or svg, got ['gif']", '--vmin/--vmax: expected vmin < vmax, got 2.0 and
         1.0', '--levels: expected a whole number >= 2, got 1']
    """
    out = []
    bad = [f for f in formats if f not in ("png", "pdf", "svg")]
    if bad:
        out.append(f"plot formats: expected png, pdf or svg, got {bad}")
    for name, v in (("--zmax", zmax), ("--vmin", vmin), ("--vmax", vmax)):
        if v is not None and not np.isfinite(v):
            out.append(f"{name}: expected a finite number, got {v!r}")
    if vmin is not None and vmax is not None and np.isfinite(vmin) and np.isfinite(vmax) and vmin >= vmax:
        out.append(f"--vmin/--vmax: expected vmin < vmax, got {vmin} and {vmax}")
    if isinstance(n_levels, bool) or not isinstance(n_levels, (int, np.integer)) or n_levels < 2:
        out.append(f"--levels: expected a whole number >= 2, got {n_levels!r}")
    return out


def plot_surface(path: str | Path, out_dir: str | Path | None = None, formats: Sequence[str] = ("png", "pdf"),
                 log: bool = False, zmax: float | None = None, figures: Sequence[str] = FIGURES, *,
                 vmin: float | None = None, vmax: float | None = None, n_levels: int = 20,
                 equal_aspect: bool = False) -> list[Path]:
    """Write the figures of one surface file; returns the files written. The loss colour range is
    [vmin, vmax] when given (default: the computed values), with ``n_levels`` contour levels (geometric for the
    loss); ``equal_aspect`` draws α and β at the same scale."""
    problems = plot_problems(formats, zmax, vmin, vmax, n_levels)
    if problems:
        raise ConfigError(problems)
    plt = pyplot()
    s = read_surface(path)
    out_dir = Path(out_dir) if out_dir else Path(path).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(path).stem
    xl, yl = axis_labels(s)
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        fig.suptitle(_title(s), fontsize=9)
        fig.tight_layout()
        for fmt in formats:
            p = out_dir / f"{stem}_{name}.{fmt}"
            savefig(fig, p)
            written.append(p)
        plt.close(fig)

    if s.beta is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        axes[0].plot(s.alpha, s.loss, "-o", ms=3)
        axes[0].set_ylabel("loss")
        if log:
            axes[0].set_yscale("log")
        axes[1].plot(s.alpha, s.accuracy, "-o", ms=3, color="tab:green")
        axes[1].set_ylabel("accuracy")
        for ax in axes:
            ax.set_xlabel(xl)
            ax.grid(alpha=0.3)
        save(fig, "line")
        return written

    traj, why = path_to_draw(s, read_projected_path(path))
    if why and why != "the file holds no projected path":
        _log.info("%s: projected path not drawn: %s", path, why)
    others = read_projections(path)
    A, B = np.meshgrid(s.alpha, s.beta, indexing="ij")
    if min(A.shape) < 2:  # contours and surfaces need two points along each axis
        skipped = [f for f in figures if f != "heatmap"]
        if skipped:
            _log.warning("%s: grid %s is too small for %s figures; drawing the heatmap only", path, A.shape, skipped)
        figures = [f for f in figures if f == "heatmap"]
    panels = _panels(s, log, zmax)
    for kind in figures:
        if kind not in FIGURES:
            raise ConfigError(f"figure {kind!r}: expected one of {list(FIGURES)}")
        if kind == "3d":
            fig = plt.figure(figsize=(6 * len(panels), 5))
            for k, (name, vals, lg) in enumerate(panels):
                ax = fig.add_subplot(1, len(panels), k + 1, projection="3d")
                z = np.log10(vals) if lg else vals
                lo, hi = (vmin, vmax) if name == "loss" else (None, None)
                if lg:
                    lo, hi = (np.log10(x) if x is not None and x > 0 else None for x in (lo, hi))
                surf = ax.plot_surface(A, B, np.ma.filled(z, np.nan), cmap="viridis", linewidth=0, antialiased=True,
                                       norm=color_norm(z, False, None, lo, hi))
                fig.colorbar(surf, ax=ax, shrink=0.6, pad=0.12, label=f"log10 {name}" if lg else name)
                if traj is not None:  # on the surface: its height is the surface's value at each point
                    h = surface_height(s, np.ma.filled(z.astype(float), np.nan), traj["alpha"], traj["beta"])
                    ax.plot(traj["alpha"], traj["beta"], h, "-o", color="crimson", ms=2, lw=1.5, zorder=5)
                ticker = require("matplotlib.ticker", "plot")
                for axis in (ax.xaxis, ax.yaxis, ax.zaxis):  # few ticks: long labels overlapped on the α axis
                    axis.set_major_locator(ticker.MaxNLocator(5))
                ax.tick_params(labelsize=7, pad=1)
                ax.set_xlabel(xl, fontsize=7, labelpad=6)
                ax.set_ylabel(yl, fontsize=7, labelpad=6)
                ax.set_zlabel(f"log10 {name}" if lg else name, fontsize=8, labelpad=10)  # clear of the z ticks
            save(fig, "3d")
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 5), squeeze=False)
        for ax, (name, vals, lg) in zip(axes[0], panels):
            lo, hi = (vmin, vmax) if name == "loss" else (None, None)
            lv = levels(vals, lg or name == "loss", n_levels, lo, hi)
            if kind == "contour":
                cs = ax.contour(A, B, vals, levels=lv, norm=color_norm(vals, lg, lv), cmap="viridis")
                ax.clabel(cs, cs.levels[::2], inline=True, fontsize=7, fmt="%.3g")
            elif kind == "filled":
                ext = "both" if lo is not None or hi is not None else "neither"  # values outside [vmin, vmax]
                cs = ax.contourf(A, B, vals, levels=lv, norm=color_norm(vals, lg, lv, extend=ext), cmap="viridis",
                                 extend=ext)
                plain_ticks(fig.colorbar(cs, ax=ax, label=name))
            else:  # the loss on a log colour scale when it spans a few times its minimum, as the contours space it
                log_colours = lg or (name == "loss" and log_colour_scale(vals))
                scale = " (log scale)" if lg else " (log colour scale)" if log_colours else ""
                im = _heatmap(ax, s, vals, color_norm(vals, log_colours, None, lo, hi))
                plain_ticks(fig.colorbar(im, ax=ax, label=f"{name}{' (log scale)' if log_colours else ''}"))
            ax.set_xlabel(xl)
            ax.set_ylabel(yl)
            ax.set_title(name + (scale if kind == "heatmap" else " (log scale)" if lg else ""))
            ax.set_aspect("equal" if equal_aspect else "auto")
            _overlay(ax, traj)
            _overlay_others(ax, others)
        save(fig, kind)
    for p in written:
        _log.info("wrote %s", p)
    return written
