"""An animated GIF of the projected training path moving over a surface's filled contours, with the model's
decision regions beside it for 2-D data.

Example:
    >>> animate_path.__name__
    'animate_path'
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import numpy as np

from ..core.errors import ConfigError
from ..core.optional import require
from ..io.hdf5 import writes_to
from ..io.surface_file import read_projected_path, read_surface
from .mpl import pyplot
from .surface_plots import axis_labels, levels

__all__ = ["animate_path"]

_log = logging.getLogger(__name__)


def animate_path(path: str | Path, out: str | Path | None = None, fps: float = 3.0,
                 regions: Callable[[int], tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
                 points: tuple[np.ndarray, np.ndarray] | None = None) -> Path:
    """An animated GIF (pillow writer, no external binary) of the projected path moving over the filled
    contour, titled with the current epoch, loss and accuracy. ``regions(k)`` gives (xx, yy, classes) of a
    model's decision regions at checkpoint ``k`` (2-D data), drawn beside the path with ``points`` (x, y)."""
    plt = pyplot()
    animation = require("matplotlib.animation", "plot")
    s = read_surface(path)
    traj = read_projected_path(path)
    if traj is None or s.beta is None:
        raise ConfigError(f"{path}: no projected trajectory on a 2-D surface to animate (compute a surface with "
                          "directions=pca, or one around a checkpoint of a trained run)")
    out = Path(out) if out else Path(path).with_name(Path(path).stem + "_path.gif")
    A, B = np.meshgrid(s.alpha, s.beta, indexing="ij")
    loss = np.ma.masked_invalid(s.loss)
    ncols = 2 if regions is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5.5 * ncols, 4.6), squeeze=False)
    ax = axes[0][0]
    cs = ax.contourf(A, B, loss, levels=levels(loss, True), cmap="viridis")
    fig.colorbar(cs, ax=ax, label="loss")
    xl, yl = axis_labels(s)
    ax.set_xlabel(xl, fontsize=8)
    ax.set_ylabel(yl, fontsize=8)
    (line,) = ax.plot([], [], "-o", color="crimson", ms=3, lw=1.5)
    (head,) = ax.plot([], [], "*", color="gold", mec="black", ms=14)
    ax.plot(traj["alpha"][0], traj["beta"][0], "s", color="black", ms=6)
    title = fig.suptitle("")

    def frame(k: int) -> list:
        line.set_data(traj["alpha"][: k + 1], traj["beta"][: k + 1])
        head.set_data([traj["alpha"][k]], [traj["beta"][k]])
        lo, ac = traj.get("loss", [np.nan] * (k + 1))[k], traj.get("accuracy", [np.nan] * (k + 1))[k]
        title.set_text(f"epoch {traj['epoch'][k]:g}   loss {lo:.4g}   accuracy {ac:.3g}")
        if regions is not None:
            rax = axes[0][1]
            rax.clear()
            xx, yy, zz = regions(k)
            rax.contourf(xx, yy, zz, alpha=0.35, cmap="brg")
            if points is not None:
                rax.scatter(points[0][:, 0], points[0][:, 1], c=points[1], s=6, cmap="brg")
            rax.set_title("decision regions", fontsize=9)
        return [line, head, title]

    anim = animation.FuncAnimation(fig, frame, frames=len(traj["alpha"]), blit=False)
    with writes_to(out):
        anim.save(out, writer=animation.PillowWriter(fps=fps))
    plt.close(fig)
    _log.info("wrote %s", out)
    return out
