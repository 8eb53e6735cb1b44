"""Figures of a topology file: the persistence diagram (each basin's minimum against the saddle where it merges,
the deepest basin on the top line), and the landscape itself with its basins outlined (a surface: the contours
with every basin above the threshold drawn at its saddle level and numbered at its minimum; a line or path: the
loss with each basin's minimum and saddle marked).

Example:
    >>> plot_topology.__name__  # tested on the topology of a stored surface in tests/views
    'plot_topology'
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from ..io.hdf5 import SAMPLE_SCHEMA, file_schema
from ..io.path_file import read_path
from ..io.sample_file import SampleData, read_sample
from ..io.surface_file import read_surface
from ..io.topology_file import read_topology, share_label
from ..analysis.merge_tree import merge_tree_segments, topological_profile, tree_order
from ..analysis.topology import basin_region
from .mpl import pyplot, save_figure

__all__ = ["plot_topology", "tree_inputs"]


def plot_topology(path: str | Path, out_dir: str | Path | None = None, formats: Sequence[str] = ("png", "pdf"),
                  relative: float = 0.01, shown: int = 8) -> list[Path]:
    """``<stem>.<fmt>`` beside the topology file (or in ``out_dir``): the persistence diagram and the landscape
    with its ``shown`` most persistent basins above ``relative`` × the loss range outlined."""
    t = read_topology(path)
    a = t["attrs"]
    pairs, dims = t["persistence"], t["dimension"]
    low, high = float(a["low"]), float(a["high"])
    span = high - low if high > low else 1.0
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 4.8), gridspec_kw={"width_ratios": [1, 1.25]})
    top = high + 0.08 * span  # where the classes that never die are drawn
    for dim, marker, colour in ((0, "o", "tab:blue"), (1, "^", "tab:orange")):
        sel = pairs[dims == dim]
        if not len(sel):
            continue
        death = np.where(np.isfinite(sel[:, 1]), sel[:, 1], top)
        left.scatter(sel[:, 0], death, s=18, marker=marker, color=colour, alpha=0.8,
                     label=f"H{dim}: {'basins' if dim == 0 else 'loops'} ({len(sel)})")
    left.plot([low, high], [low, high], color="0.5", lw=0.8)
    left.axhline(top, color="0.6", lw=0.8, ls="--")
    left.text(low, top, " never merges (the deepest basin)", va="bottom", fontsize=8, color="0.35")
    bar = relative * span
    left.fill_between([low, high], [low, high], [low + bar, high + bar], color="0.85", lw=0,
                      label=f"barrier below {relative:g} of the range")
    left.set_xlabel("birth: the basin's minimum loss")
    left.set_ylabel("death: the saddle's loss")
    left.set_title("persistence diagram")
    left.legend(loc="lower right", fontsize=8)
    _landscape(right, t, relative, shown)
    fig.suptitle(f"topology of {Path(str(a.get('source', '?'))).name}" + (f" [{a['item']}]" if a.get("item") else "")
                 + f": {int(np.sum(t['basins/saddle'] - t['basins/minimum'] > bar))} basin(s) above {relative:g} "
                 f"of the range, roughness {float(a['roughness']):.3g}", fontsize=10)
    fig.tight_layout()
    folder = Path(out_dir) if out_dir else Path(path).parent
    folder.mkdir(parents=True, exist_ok=True)
    written = save_figure(fig, folder, Path(path).stem, formats)
    return written + _tree_figure(t, folder, Path(path).stem + "_tree", formats, relative, shown)


def tree_inputs(t: dict, relative: float = 0.01, shown: int = 8) -> tuple[list[int], float, np.ndarray]:
    """The basins a tree figure shows (the deepest and the ``shown`` most persistent above ``relative`` × the
    loss range whose merges were traced), the height of its top, and the basins' grid fractions (NaN in files
    written before fractions were stored)."""
    a = t["attrs"]
    low, high = float(a["low"]), float(a["high"])
    span = high - low if high > low else 1.0
    minima, saddles, into = t["basins/minimum"], t["basins/saddle"], t["basins/merges_into"]
    keep = [i for i in range(len(minima)) if not np.isfinite(saddles[i])
            or (saddles[i] - minima[i] > relative * span and into[i] >= 0)][:shown + 1]
    fractions = t.get("basins/fraction", np.full(len(minima), np.nan))
    return keep, high + 0.05 * span, np.asarray(fractions, dtype=float)


def _tree_figure(t: dict, folder: Path, stem: str, formats: Sequence[str], relative: float, shown: int
                 ) -> list[Path]:
    """``<stem>.<fmt>``: the merge tree (each basin from its minimum up to the saddle where it joins an older one)
    beside the 1-D topological profile (a valley per basin, as deep as its barrier, as wide as its share of the
    grid)."""
    minima, saddles, into = t["basins/minimum"], t["basins/saddle"], t["basins/merges_into"]
    keep, top, fractions = tree_inputs(t, relative, shown)
    plt = pyplot()
    fig, (tree, profile) = plt.subplots(1, 2, figsize=(11.5, 4.4))
    order = tree_order(minima, saddles, into, keep)
    for (x0, y0), (x1, y1) in merge_tree_segments(minima, saddles, into, top, keep):
        tree.plot([x0, x1], [y0, y1], color="k", lw=1.4)
    for k, i in enumerate(order):
        tree.plot(k, minima[i], "o", color=f"C{k % 10}", zorder=3)
        tree.annotate(str(i), (k, minima[i]), textcoords="offset points", xytext=(0, -13), ha="center", fontsize=8)
    tree.set_xticks([])
    tree.set_xlim(-0.6, len(order) - 0.4)
    tree.set_ylabel("loss")
    tree.set_title("merge tree: basins join at their saddles")
    x, y = topological_profile(minima, saddles, into, fractions, top, keep)
    profile.fill_between(x, y, top, color="0.9")
    profile.plot(x, y, color="k", lw=1.2)
    profile.set_xlim(0, 1)
    profile.set_xlabel(share_label(t["attrs"]))
    profile.set_ylabel("loss")
    profile.set_title("topological profile: a valley per basin")
    fig.tight_layout()
    return save_figure(fig, folder, stem, formats)


def _landscape(ax: object, t: dict, relative: float, shown: int) -> None:
    """The landscape the topology was computed from, with its basins."""
    a = t["attrs"]
    source = Path(str(a.get("source", "")))
    minima, saddles = t["basins/minimum"], t["basins/saddle"]
    span = float(a["high"]) - float(a["low"]) or 1.0
    keep = [i for i in range(len(minima)) if saddles[i] - minima[i] > relative * span][:shown]
    if not source.exists():
        ax.text(0.5, 0.5, f"{source.name}: not found beside the topology file", ha="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    at, coords = t["basins/at"], t["basins/coords"]
    if file_schema(source) == SAMPLE_SCHEMA:
        _sample_landscape(ax, read_sample(source), coords, keep)
        return
    s = read_surface(source)
    if s.beta is None or a.get("item"):
        alpha = s.alpha if s.beta is None else s.beta
        loss = s.loss if s.beta is None else s.loss[[str(n) for n in read_path(source)["name"]].index(a["item"])]
        ax.plot(alpha, loss, color="k", lw=1.2)
        for rank, i in enumerate(keep):
            ax.plot(alpha[at[i][0]], minima[i], "o", color=f"C{rank}", label=f"basin {i}")
            if math.isfinite(saddles[i]):
                j = t["basins/saddle_at"][i][0]
                ax.plot(alpha[j], saddles[i], "x", color=f"C{rank}")
                ax.vlines(alpha[at[i][0]], minima[i], saddles[i], color=f"C{rank}", lw=1, ls=":")
        ax.set_xlabel("alpha")
        ax.set_ylabel("loss")
        ax.set_title("basins: minima (o) and saddles (x), barriers dotted")
        ax.legend(fontsize=8)
        return
    A, B = np.meshgrid(s.alpha, s.beta, indexing="ij")
    levels = np.linspace(float(np.min(s.loss)), float(np.max(s.loss)), 21)
    filled = ax.contourf(A, B, s.loss, levels=levels, cmap="viridis")
    ax.figure.colorbar(filled, ax=ax, label="loss")
    mid = np.array([np.mean(s.alpha), np.mean(s.beta)])
    for rank, i in enumerate(keep):
        colour = f"C{(rank + 1) % 10}"
        if math.isfinite(saddles[i]):  # the basin's region: its own component of {loss < saddle}
            region = basin_region(np.asarray(s.loss), tuple(at[i]), saddles[i]).astype(float)
            ax.contour(A, B, region, levels=[0.5], colors=[colour], linewidths=1.6)
        ax.plot(*coords[i], "o", color=colour, markeredgecolor="white", clip_on=False, zorder=3)
        towards = np.sign(mid - coords[i]) * 9  # the number inside the plot, also for a minimum on its edge
        ax.annotate(f"{i}", coords[i], textcoords="offset points", xytext=tuple(towards), color="white",
                    fontsize=9, fontweight="bold", ha="center", va="center")
    ax.set_xlabel("alpha")
    ax.set_ylabel("beta")
    ax.set_title("basins: minima numbered, outlined where they merge")


def _sample_landscape(ax: object, s: SampleData, coords: np.ndarray, keep: Sequence[int]) -> None:
    """A k-dimensional sample seen along its first two directions: every point at (c0, c1) coloured by its loss
    (the lowest drawn last, on top), the basins' minima numbered; a 1-D sample as its line."""
    c, loss = s.coefficients, np.asarray(s.loss, dtype=np.float64)
    if s.k == 1:
        order = np.argsort(c[:, 0])
        ax.plot(c[order, 0], loss[order], color="k", lw=1.2)
        for rank, i in enumerate(keep):
            ax.plot(coords[i][0], _loss_at(loss, c, coords[i]), "o", color=f"C{rank}", label=f"basin {i}")
        ax.set_xlabel("c0")
        ax.set_ylabel("loss")
        ax.set_title("basins of the sample: minima (o)")
        return
    order = np.argsort(-loss)
    dots = ax.scatter(c[order, 0], c[order, 1], c=loss[order], s=max(2.0, 4000.0 / len(loss)), cmap="viridis")
    ax.figure.colorbar(dots, ax=ax, label="loss")
    for rank, i in enumerate(keep):
        colour = f"C{(rank + 1) % 10}"
        ax.plot(coords[i][0], coords[i][1], "o", color=colour, markeredgecolor="white", ms=8, zorder=3)
        ax.annotate(f"{i}", (coords[i][0], coords[i][1]), textcoords="offset points", xytext=(7, 7), color="k",
                    fontsize=9, fontweight="bold")
    ax.set_xlabel("c0")
    ax.set_ylabel("c1")
    ax.set_title(f"{len(loss)} points of a {s.k}-D sample seen along c0, c1; basins' minima numbered")


def _loss_at(loss: np.ndarray, c: np.ndarray, at: np.ndarray) -> float:
    """The loss at the sample point whose coefficients are ``at``."""
    return float(loss[int(np.argmin(np.abs(c - np.asarray(at)[None, :c.shape[1]]).sum(axis=1)))])
