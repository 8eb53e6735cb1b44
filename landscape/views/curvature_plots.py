"""Figures of curvature: the maps beside a surface (λmax, Li et al.'s |λmin/λmax| convexity map, the trace) and a
curvature file's spectrum (its eigenvalues and spectral density).

Example:
    >>> convexity_ratio(np.array([2.0, 4.0]), np.array([-1.0, 0.0])).tolist()
    [0.5, 0.0]
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.optional import require
from ..io.curvature_file import read_curvature
from ..io.surface_file import CURVATURE_DONE, read_surface
from .mpl import pyplot, save_figure
from .surface_plots import axis_labels, plain_number

__all__ = ["convexity_ratio", "plot_curvature_maps", "plot_spectrum", "spectrum_linthresh"]

log = logging.getLogger(__name__)


def convexity_ratio(lambda_max: np.ndarray, lambda_min: np.ndarray) -> np.ndarray:
    """|λmin/λmax| (Li et al. 2018): near 0 where the surface is convex, large where it has strong negative
    curvature (NaN where λmax is 0 or missing).

    Example:
        >>> convexity_ratio(np.array([0.0]), np.array([1.0])).tolist()
        [nan]
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.abs(np.asarray(lambda_min, float) / np.asarray(lambda_max, float))
    return np.where(np.isfinite(r), r, np.nan)


def plot_curvature_maps(path: str | Path, out_dir: str | Path | None = None,
                        formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """``<stem>_curvature.<fmt>``: λmax, |λmin/λmax| and the trace over the plane (those the file holds);
    nothing for a surface without maps or a line."""
    s = read_surface(path)
    if CURVATURE_DONE not in s.maps or s.beta is None or min(len(s.alpha), len(s.beta)) < 2:
        return []
    done = s.maps[CURVATURE_DONE].astype(bool)
    panels = []
    if "lambda_max" in s.maps:
        panels.append(("λmax", np.where(done, s.maps["lambda_max"], np.nan), "magma"))
    if "lambda_max" in s.maps and "lambda_min" in s.maps:
        panels.append(("|λmin/λmax|", np.where(done, convexity_ratio(s.maps["lambda_max"], s.maps["lambda_min"]),
                                               np.nan), "coolwarm"))
    elif "lambda_min" in s.maps:
        panels.append(("λmin", np.where(done, s.maps["lambda_min"], np.nan), "viridis"))
    if "trace" in s.maps:
        panels.append(("trace", np.where(done, s.maps["trace"], np.nan), "cividis"))
    plt = pyplot()
    xl, yl = axis_labels(s)
    a, b = np.meshgrid(s.alpha, s.beta, indexing="ij")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.6), squeeze=False)
    for ax, (name, vals, cmap) in zip(axes[0], panels):
        im = ax.pcolormesh(a, b, np.ma.masked_invalid(vals), shading="nearest", cmap=cmap)
        fig.colorbar(im, ax=ax, label=name)
        finite = np.isfinite(s.loss) & s.done.astype(bool)
        if finite.sum() > 3 and len(np.unique(s.loss[finite])) > 2:
            ax.contour(a, b, np.where(finite, s.loss, np.nan), levels=8, colors="white", linewidths=0.6, alpha=0.7)
        ax.set_xlabel(xl, fontsize=8)
        ax.set_ylabel(yl, fontsize=8)
        ax.set_title(name + ("  (0: convex)" if name.startswith("|") else ""), fontsize=9)
    fig.suptitle(f"curvature of {Path(path).name} ({int(done.sum())}/{done.size} points; white: loss contours)",
                 fontsize=9)
    fig.tight_layout()
    return save_figure(fig, Path(out_dir) if out_dir else Path(path).parent, f"{Path(path).stem}_curvature", formats)


def spectrum_linthresh(values: np.ndarray) -> float:
    """The linear region of the spectrum's symmetric-log axis: a hundredth of the largest |eigenvalue| (at least
    1e-12), so that small negative and positive eigenvalues stay apart from zero and from each other.

    Example:
        >>> spectrum_linthresh(np.array([18.5, -1.2, 0.0]))
        0.185
    """
    v = np.abs(np.asarray(values, float))
    v = v[np.isfinite(v)]
    return max(1e-12, 0.01 * float(v.max())) if v.size else 1.0


def plot_spectrum(path: str | Path, out_dir: str | Path | None = None,
                  formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """``<stem>_spectrum.<fmt>`` of a curvature file: the Hessian's spectrum on a symmetric-log axis, each
    eigenvalue found marked and labelled with its value, the mean eigenvalue (trace / parameters) where the trace
    was estimated, and the spectral density (SLQ) where it was computed: λmax, λmin and the bulk at a glance."""
    c = read_curvature(path)
    plt = pyplot()
    ticker = require("matplotlib.ticker", "plot")
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    eig = np.asarray(c["eigenvalues"], float)
    kinds = list(c["eigen_kind"])
    n_params = c["inputs"].get("parameters")
    mean = c["trace"] / n_params if "trace" in c and n_params else None
    marks = list(eig) + ([mean] if mean is not None else [])
    has_density = "density/grid" in c
    if has_density:
        ax.plot(c["density/grid"], np.maximum(c["density/values"], 1e-12), color="tab:blue",
                label="spectral density (SLQ)")
        ax.set_yscale("log")
        marks += [float(np.min(c["density/grid"])), float(np.max(c["density/grid"]))]
    ax.set_xscale("symlog", linthresh=spectrum_linthresh(np.asarray(marks)))
    colours = {"top": "crimson", "bottom": "tab:green"}
    for v, k in zip(eig, kinds):
        ax.axvline(v, color=colours.get(k, "grey"), lw=1.2)
    for kind, what in (("top", "largest"), ("bottom", "smallest")):
        values = sorted((v for v, k in zip(eig, kinds) if k == kind), reverse=True)
        if values:  # the values in the legend: lines close on the axis stay readable
            ax.plot([], [], color=colours[kind], label=f"{what} (Lanczos): " + ", ".join(f"{v:.4g}" for v in values))
    if mean is not None:
        ax.axvline(mean, color="0.35", ls=":", lw=1.4,
                   label=f"mean eigenvalue {mean:.3g} (trace {c['trace']:.4g} ± {c.get('trace_stderr', 0):.2g} "
                         f"/ {n_params} parameters)")
    if not has_density:
        ax.set_yticks([])
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: plain_number(v)))
    ax.set_xlabel("eigenvalue of the Hessian (symmetric log scale)")
    ax.set_ylabel("density" if has_density else "")
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)
    ax.set_title(f"Hessian spectrum: {c['inputs'].get('model')} at {Path(str(c['inputs'].get('center'))).name}\n"
                 f"λmax {c['attrs']['lambda_max']:.4g}, λmin {c['attrs'].get('lambda_min', float('nan')):.4g}",
                 fontsize=9)
    fig.tight_layout()
    return save_figure(fig, Path(out_dir) if out_dir else Path(path).parent, f"{Path(path).stem}_spectrum", formats)
