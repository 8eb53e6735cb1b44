"""Figures of training dynamics (TensorViz, Chen et al. 2017): per-layer weight and gradient norms over the
optimiser steps, the walk of each layer's weight vector, and filter correlation heatmaps.

Example:
    >>> import tempfile, numpy as np
    >>> plot_correlation({"w": np.eye(3)}, tempfile.mkdtemp() + "/c.png").suffix
    '.png'
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..core.errors import ConfigError
from ..core.optional import require
from .mpl import pyplot, save_figure, savefig

__all__ = ["plot_norms", "plot_weight_walk", "plot_correlation", "sqrt_fit"]


def plot_norms(store: Any, out_dir: str | Path, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Weight and gradient L2 norms per layer over steps (conv solid, fully connected dashed), each weight curve
    with its own least-squares fit a + c·√t (thin dotted, same colour; the fitted c in the legend)."""
    nm = store.norms()
    if nm is None:
        raise ConfigError(f"{store.path}: no norms recorded; train with train.norms_every=N")
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    s = nm["step"].astype(float)
    for k, (layer, kind) in enumerate(zip(nm["layers"], nm["kinds"])):
        ls = "-" if kind == "conv" else ("--" if kind == "linear" else "-.")
        w = nm["weight"][:, k]
        fit = sqrt_fit(s, w)
        line, = axes[0].plot(s, w, ls, label=f"{layer} ({kind})" + (f", c = {fit[1]:.3g}" if fit else ""))
        if fit:
            axes[0].plot(s, fit[0] + fit[1] * np.sqrt(s), ":", lw=1, color=line.get_color())
        axes[1].plot(s, nm["grad"][:, k], ls, label=f"{layer} ({kind})", alpha=0.8)
    if len(s) > 1:
        axes[0].plot([], [], ":", color="black", lw=1, label="a + c·√t fit per layer")
    axes[0].set_ylabel("weight L2 norm")
    axes[1].set_ylabel("gradient L2 norm")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("optimiser step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_dir, "norms", formats)


def sqrt_fit(t: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    """Least-squares (a, c) of y ≈ a + c·√t, or None with fewer than two points.

    Example:
        >>> sqrt_fit(np.array([0.0, 1.0, 4.0]), np.array([1.0, 3.0, 5.0]))
        (1.0, 2.0)
    """
    if len(t) < 2:
        return None
    X = np.stack([np.ones(len(t)), np.sqrt(np.asarray(t, dtype=np.float64))], 1)
    (a, c), *_ = np.linalg.lstsq(X, np.asarray(y, dtype=np.float64), rcond=None)
    return round(float(a), 12), round(float(c), 12)


def plot_weight_walk(store: Any, out_dir: str | Path, method: str = "first2", seed: int = 0,
                     formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Each layer's weight vector over the checkpoints in 2-D: its first two coordinates (``first2``) or a
    seeded Gaussian random projection (``random``), coloured by step."""
    plt = pyplot()
    names = [n for n in store.spec.names if n.endswith("weight")]
    t = store.table()
    vecs = [store.vector(k) for k in range(len(t["step"]))]
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.8 * rows), squeeze=False, layout="constrained")
    ticker = require("matplotlib.ticker", "plot")
    xlabel, ylabel = (("random projection 1", "random projection 2") if method == "random"
                      else ("weight [0]", "weight [1]"))
    g = torch.Generator().manual_seed(seed)
    for ax, name in zip(axes.ravel(), names):
        w = torch.stack([v[store.spec.slice(name)] for v in vecs]).double()
        if method == "random":
            proj = torch.randn(w.shape[1], 2, generator=g, dtype=torch.float64) / np.sqrt(w.shape[1])
            xy = (w @ proj).numpy()
        else:
            xy = w[:, :2].numpy()
        ax.plot(xy[:, 0], xy[:, 1], "-", color="grey", lw=0.6)
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=t["step"], cmap="plasma", s=12)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        for axis in (ax.xaxis, ax.yaxis):  # few ticks, short labels (an offset carries the common part)
            axis.set_major_locator(ticker.MaxNLocator(4))
            axis.set_major_formatter(ticker.ScalarFormatter(useOffset=True))
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    fig.colorbar(sc, ax=axes.ravel().tolist(), label="optimiser step", shrink=0.8)
    return save_figure(fig, out_dir, "weight_walk", formats)


def plot_correlation(corrs: dict[str, np.ndarray], out: str | Path, formats: Sequence[str] = ("png", "pdf")
                     ) -> Path:
    """Heatmaps of correlation matrices side by side (e.g. weights and activations of one layer), saved as
    ``out`` and in each other format beside it; returns ``out``."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(corrs), figsize=(4.6 * len(corrs), 4), squeeze=False)
    for ax, (title, c) in zip(axes[0], corrs.items()):
        im = ax.imshow(c, vmin=-1, vmax=1, cmap="coolwarm")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("filter")
        ax.set_ylabel("filter")
    fig.colorbar(im, ax=axes[0].tolist(), label="Pearson correlation")
    out = Path(out)
    for fmt in dict.fromkeys([out.suffix.lstrip(".")] + list(formats)):
        savefig(fig, out.with_suffix(f".{fmt}"))
    plt.close(fig)
    return out
