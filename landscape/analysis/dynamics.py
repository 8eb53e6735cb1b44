"""Training dynamics maths (TensorViz, Chen et al. 2017): per-layer weight and gradient L2 norms recorded during
training, Pearson correlation between filters (of weights and of activations), and merging of correlated
filters. Their figures and ParaView series are in :mod:`landscape.views`.

Example:
    >>> w = torch.tensor([[1., 2., 3.], [2., 4., 6.], [3., 1., 2.]])
    >>> [round(float(v), 6) for v in filter_correlation(w)[0]]
    [1.0, 1.0, -0.5]
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..core.errors import ConfigError
from ..core.models import layer_names

__all__ = ["LayerNorms", "filter_correlation", "activation_correlation", "correlated_pairs", "merge_filters",
           "layer_kind"]

log = logging.getLogger(__name__)


def layer_kind(module: nn.Module) -> str:
    """``conv``, ``linear`` or ``other``."""
    if isinstance(module, nn.modules.conv._ConvNd):
        return "conv"
    return "linear" if isinstance(module, nn.Linear) else "other"


class LayerNorms:
    """Per-layer L2 norms of weights and gradients, kept on the device until ``flush`` (one sync per call)."""

    def __init__(self, model: nn.Module):
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
