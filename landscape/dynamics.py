"""Training dynamics (TensorViz, Chen et al. 2017): per-layer weight and gradient L2 norms recorded during
training, the evolution of convolution filters as a ParaView time series, the walk of each layer's weight
vector, Pearson correlation between filters (of weights and of activations), and merging of correlated filters.

Example:
    >>> w = torch.tensor([[1., 2., 3.], [2., 4., 6.], [3., 1., 2.]])
    >>> [round(float(v), 6) for v in filter_correlation(w)[0]]
    [1.0, 1.0, -0.5]
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .errors import ConfigError

__all__ = ["LayerNorms", "filter_correlation", "activation_correlation", "correlated_pairs", "merge_filters",
           "export_filter_evolution", "plot_norms", "plot_weight_walk", "plot_correlation", "layer_kind"]

log = logging.getLogger(__name__)


def layer_kind(module: nn.Module) -> str:
    """``conv``, ``linear`` or ``other``."""
    if isinstance(module, nn.modules.conv._ConvNd):
        return "conv"
    return "linear" if isinstance(module, nn.Linear) else "other"


class LayerNorms:
    """Per-layer L2 norms of weights and gradients, kept on the device until ``flush`` (one sync per call)."""

    def __init__(self, model: nn.Module):
        from .models import layer_names

        mods = dict(model.named_modules())
        self.layers = layer_names(model)
        self.kinds = [layer_kind(mods[n]) for n in self.layers]
        self.params = [list(mods[n].parameters(recurse=False)) for n in self.layers]
        self._rows: list[tuple[int, torch.Tensor, torch.Tensor]] = []

    @staticmethod
    def _norms(groups: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
        flat = [t for g in groups for t in g]
        sq = torch.stack(torch._foreach_norm(flat)).double() ** 2 if flat else torch.zeros(0)
        out, k = [], 0
        for g in groups:
            out.append(sq[k:k + len(g)].sum().sqrt())
            k += len(g)
        return torch.stack(out)

    @torch.no_grad()
    def grad_norms(self) -> torch.Tensor:
        grads = [[p.grad if p.grad is not None else torch.zeros_like(p) for p in ps] for ps in self.params]
        return self._norms(grads)

    @torch.no_grad()
    def record(self, step: int, grads: torch.Tensor) -> None:
        self._rows.append((step, self._norms(self.params), grads))

    def flush(self) -> tuple[list[str], list[str], np.ndarray, np.ndarray, np.ndarray]:
        rows, self._rows = self._rows, []
        if not rows:
            return self.layers, self.kinds, np.zeros(0, np.int64), np.zeros((0, len(self.layers))), np.zeros(
                (0, len(self.layers)))
        w = torch.stack([r[1] for r in rows]).cpu().numpy()
        g = torch.stack([r[2] for r in rows]).cpu().numpy()
        return self.layers, self.kinds, np.array([r[0] for r in rows]), w, g


def filter_correlation(values: torch.Tensor) -> np.ndarray:
    """Pearson correlation between rows (filters) of ``values`` [F, ...] (NaN-free: constant rows give 0)."""
    m = values.detach().reshape(values.shape[0], -1).double().cpu().numpy()
    m = m - m.mean(1, keepdims=True)
    norm = np.linalg.norm(m, axis=1)
    norm[norm == 0] = np.inf
    c = (m @ m.T) / np.outer(norm, norm)
    np.fill_diagonal(c, 1.0)
    return c


@torch.no_grad()
def activation_correlation(model: nn.Module, layer: str, x: torch.Tensor) -> np.ndarray:
    """Correlation between the output channels of ``layer`` over a batch (channel values across samples and
    positions)."""
    mod = dict(model.named_modules())[layer]
    seen: list[torch.Tensor] = []
    handle = mod.register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
    try:
        model.eval()
        model(x)
    finally:
        handle.remove()
    a = seen[0]
    return filter_correlation(a.transpose(0, 1).reshape(a.shape[1], -1))


def correlated_pairs(corr: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """Pairs (i < j) with correlation >= threshold, strongest first.

    Example:
        >>> correlated_pairs(np.array([[1, .95, .1], [.95, 1, .2], [.1, .2, 1]]), 0.9)
        [(0, 1, 0.95)]
    """
    i, j = np.triu_indices(len(corr), 1)
    keep = corr[i, j] >= threshold
    pairs = sorted(zip(i[keep].tolist(), j[keep].tolist(), corr[i, j][keep].tolist()), key=lambda p: -p[2])
    return [(a, b, round(c, 6)) for a, b, c in pairs]


def _next_layer(model: nn.Module, layer: str) -> tuple[str, nn.Module]:
    from .models import layer_names

    names, mods = layer_names(model), dict(model.named_modules())
    k = names.index(layer)
    if k + 1 >= len(names):
        raise ConfigError(f"{layer} is the last layer; its filters feed no layer that could absorb a merge")
    return names[k + 1], mods[names[k + 1]]


@torch.no_grad()
def merge_filters(model: nn.Module, layer: str, pairs: Sequence[tuple[int, int]]) -> nn.Module:
    """Merge each pair (i, j) of ``layer``'s filters: filter i becomes their average, filter j is removed, and
    the next layer takes channel j's input weights added to channel i's. The model is changed in place.

    Supported: a convolution followed directly by a convolution, or by a linear layer through a flatten
    (as in LeNet-5). Identical filters merge without changing the outputs."""
    mods = dict(model.named_modules())
    conv = mods.get(layer)
    if not isinstance(conv, nn.Conv2d) or conv.groups != 1:
        raise ConfigError(f"merge_filters: {layer!r} must be an ungrouped Conv2d")
    nname, nxt = _next_layer(model, layer)
    out_ch = conv.out_channels
    if isinstance(nxt, nn.Conv2d) and nxt.in_channels == out_ch and nxt.groups == 1:
        block = 1
    elif isinstance(nxt, nn.Linear) and nxt.in_features % out_ch == 0:
        block = nxt.in_features // out_ch
    else:
        raise ConfigError(f"merge_filters: {layer} feeds {nname} ({type(nxt).__name__}); only conv -> conv or "
                          "conv -> flatten -> linear without normalisation between are supported")
    keep = list(range(out_ch))
    w, b = conv.weight.clone(), conv.bias.clone() if conv.bias is not None else None
    nw = nxt.weight.clone()
    for i, j in pairs:
        if i not in keep or j not in keep or i == j:
            continue
        w[i] = (w[i] + w[j]) / 2
        if b is not None:
            b[i] = (b[i] + b[j]) / 2
        if block == 1:
            nw[:, i] += nw[:, j]
        else:
            nw[:, i * block:(i + 1) * block] += nw[:, j * block:(j + 1) * block]
        keep.remove(j)
    idx = torch.tensor(keep)
    new = nn.Conv2d(conv.in_channels, len(keep), conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                    bias=b is not None).to(w.device)
    new.weight.copy_(w[idx])
    if b is not None:
        new.bias.copy_(b[idx])
    if block == 1:
        nn_new = nn.Conv2d(len(keep), nxt.out_channels, nxt.kernel_size, nxt.stride, nxt.padding, nxt.dilation,
                           bias=nxt.bias is not None).to(w.device)
        nn_new.weight.copy_(nw[:, idx])
    else:
        cols = torch.cat([torch.arange(k * block, (k + 1) * block) for k in keep])
        nn_new = nn.Linear(len(keep) * block, nxt.out_features, bias=nxt.bias is not None).to(w.device)
        nn_new.weight.copy_(nw[:, cols])
    if nxt.bias is not None:
        nn_new.bias.copy_(nxt.bias)
    for name, module in ((layer, new), (nname, nn_new)):
        parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
        setattr(parent, name.rsplit(".", 1)[-1], module)
    return model


def export_filter_evolution(store: Any, layer: str, out_dir: str | Path) -> list[Path]:
    """One ``.vtp`` per checkpoint of ``layer``'s weights as boxes (one kh×kw block per filter and input
    channel; height = value; cell arrays ``weight`` and signed RGB ``color``: red positive, blue negative) and a
    ``.pvd`` time series over the optimiser steps, so ParaView plays the evolution."""
    from vtk.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray

    from .errors import require
    from .export_vtk import write_pvd, write_vtk

    vtk = require("vtk", "vtk")
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
    # box corners: filter f along x (gap 1), input channel c along y (gap 1), kernel position inside the block
    ff, cc, ii, jj = np.meshgrid(np.arange(f_), np.arange(c_), np.arange(kh), np.arange(kw), indexing="ij")
    x0 = (ff * (kw + 1) + jj).ravel().astype(float)
    y0 = (cc * (kh + 1) + (kh - 1 - ii)).ravel().astype(float)
    n = x0.size
    corner = np.array([[0, 0, 0], [.9, 0, 0], [.9, .9, 0], [0, .9, 0], [0, 0, 1], [.9, 0, 1], [.9, .9, 1], [0, .9, 1]])
    faces = np.array([[0, 3, 2, 1], [4, 5, 6, 7], [0, 1, 5, 4], [1, 2, 6, 5], [2, 3, 7, 6], [3, 0, 4, 7]])
    conn = (faces[None] + 8 * np.arange(n)[:, None, None]).reshape(-1)
    written = []
    for k in range(len(t["step"])):
        vals = store.vector(k)[sl].double().numpy()
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
        scale = max(float(np.abs(vals).max()), 1e-12)
        mag = np.clip(np.abs(vals) / scale, 0, 1)
        rgb = np.where(vals[:, None] >= 0, np.stack([np.full(n, 255), 255 * (1 - mag), 255 * (1 - mag)], 1),
                       np.stack([255 * (1 - mag), 255 * (1 - mag), np.full(n, 255)], 1)).astype(np.uint8)
        col = numpy_to_vtk(np.repeat(rgb, 6, 0), deep=True, array_type=vtk.VTK_UNSIGNED_CHAR)
        col.SetName("color")
        poly.GetCellData().AddArray(col)
        written.append(write_vtk(poly, out_dir / f"{layer}_filters_{k:04d}.vtp"))
    written.append(write_pvd(list(zip(t["step"].tolist(), written)), out_dir / f"{layer}_filters.pvd"))
    return written


def _save(plt: Any, fig: Any, out_dir: Path, name: str, formats: Sequence[str]) -> list[Path]:
    out = [out_dir / f"{name}.{fmt}" for fmt in formats]
    for p in out:
        fig.savefig(p, dpi=150)
    plt.close(fig)
    return out


def plot_norms(store: Any, out_dir: str | Path, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Weight and gradient L2 norms per layer over steps (conv solid, fully connected dashed) with a √t
    reference fitted to the weight norms."""
    from .plot import _plt

    nm = store.norms()
    if nm is None:
        raise ConfigError(f"{store.path}: no norms recorded; train with train.norms_every=N")
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    s = nm["step"].astype(float)
    for k, (layer, kind) in enumerate(zip(nm["layers"], nm["kinds"])):
        ls = "-" if kind == "conv" else ("--" if kind == "linear" else ":")
        axes[0].plot(s, nm["weight"][:, k], ls, label=f"{layer} ({kind})")
        axes[1].plot(s, nm["grad"][:, k], ls, label=f"{layer} ({kind})", alpha=0.8)
    if len(s):
        ref = np.sqrt(s)
        mean_w = nm["weight"].mean(1)
        c = float(np.dot(ref, mean_w - mean_w[0]) / max(np.dot(ref, ref), 1e-12))
        axes[0].plot(s, mean_w[0] + c * ref, color="black", lw=1, label="√t reference")
    axes[0].set_ylabel("weight L2 norm")
    axes[1].set_ylabel("gradient L2 norm")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("optimiser step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(plt, fig, Path(out_dir), "norms", formats)


def plot_weight_walk(store: Any, out_dir: str | Path, method: str = "first2", seed: int = 0,
                     formats: Sequence[str] = ("png",)) -> list[Path]:
    """Each layer's weight vector over the checkpoints in 2-D: its first two coordinates (``first2``) or a
    seeded Gaussian random projection (``random``), coloured by step."""
    from .plot import _plt

    plt = _plt()
    names = [n for n in store.spec.names if n.endswith("weight")]
    t = store.table()
    vecs = [store.vector(k) for k in range(len(t["step"]))]
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.4 * rows), squeeze=False)
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
        ax.set_title(name, fontsize=8)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    fig.colorbar(sc, ax=axes.ravel().tolist(), label="step")
    return _save(plt, fig, Path(out_dir), "weight_walk", formats)


def plot_correlation(corrs: dict[str, np.ndarray], out: str | Path) -> Path:
    """Heatmaps of correlation matrices side by side (e.g. weights and activations of one layer)."""
    from .plot import _plt

    plt = _plt()
    fig, axes = plt.subplots(1, len(corrs), figsize=(4.6 * len(corrs), 4), squeeze=False)
    for ax, (title, c) in zip(axes[0], corrs.items()):
        im = ax.imshow(c, vmin=-1, vmax=1, cmap="coolwarm")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("filter")
        ax.set_ylabel("filter")
    fig.colorbar(im, ax=axes[0].tolist(), label="Pearson correlation")
    fig.savefig(out, dpi=150)
    plt.close(fig)
    return Path(out)


def correlation_report(model: nn.Module, data_x: torch.Tensor, out_dir: Path, threshold: float,
                       layers: Sequence[str] | None = None) -> dict[str, Any]:
    """Correlation matrices (weights and activations) of every conv layer, heatmaps, stored arrays
    (``correlation.h5``) and the pairs above ``threshold``."""
    import h5py

    mods = dict(model.named_modules())
    from .models import layer_names

    convs = [n for n in (layers or layer_names(model)) if isinstance(mods[n], nn.Conv2d)]
    report: dict[str, Any] = {}
    with h5py.File(out_dir / "correlation.h5", "w") as f:
        f.attrs["threshold"] = threshold
        for layer in convs:
            cw = filter_correlation(mods[layer].weight)
            ca = activation_correlation(model, layer, data_x)
            g = f.create_group(layer)
            g["weights"], g["activations"] = cw, ca
            pairs = {"weights": correlated_pairs(cw, threshold), "activations": correlated_pairs(ca, threshold)}
            g.attrs["pairs"] = json.dumps(pairs)
            plot_correlation({f"{layer} weights": cw, f"{layer} activations": ca}, out_dir / f"correlation_{layer}.png")
            report[layer] = pairs
    return report
