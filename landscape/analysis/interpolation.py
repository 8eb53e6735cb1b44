"""1-D paths between checkpoints (Němcová 2021): linear θ(α) = (1−α)θ₀ + αθ₁ and the quadratic Lagrange
path through θ₀ (α=0), θ_mid (α=t) and θ₁ (α=1) — and learned curves through a bend θ_b in θ_mid's place
(:mod:`landscape.analysis.curves`) — at the level of the whole model, of one layer (the final
model with that layer's tensors interpolated) or of one parameter (one scalar interpolated).

This module holds the maths: the weights of (θ₀, θ_mid, θ₁) at α, and the items (regions of the state) each
level moves. :class:`~landscape.engine.path.PathEvaluator` evaluates them.

Example:
    >>> [round(w, 6) + 0.0 for w in lagrange_weights(0.5, 0.5)]
    [0.0, 1.0, 0.0]
    >>> [round(w, 6) + 0.0 for w in lagrange_weights(2.0, 0.5)]
    [3.0, -8.0, 6.0]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..core.errors import ConfigError
from ..core.models import layer_names
from ..core.params import model_state, tied_aliases
from .curves import CURVE_KINDS, curve_weights

__all__ = ["lagrange_weights", "linear_weights", "path_weights", "PathItem", "path_items", "KINDS", "LEVELS"]

KINDS = ("linear", "quadratic") + CURVE_KINDS
LEVELS = ("model", "layer", "parameter")


def linear_weights(alpha: float) -> tuple[float, float, float]:
    """Weights of (θ₀, θ_mid, θ₁) on the linear path.

    Example:
        >>> linear_weights(0.25)
        (0.75, 0.0, 0.25)
    """
    return 1.0 - alpha, 0.0, alpha


def lagrange_weights(alpha: float, t: float = 0.5) -> tuple[float, float, float]:
    """Lagrange basis at ``alpha`` for the nodes 0, ``t``, 1: weights of (θ₀, θ_mid, θ₁).

    L₀ = (α−t)(α−1)/t, L_t = α(α−1)/(t(t−1)), L₁ = α(α−t)/(1−t).

    Example:
        >>> [w + 0.0 for w in lagrange_weights(0.0)], [w + 0.0 for w in lagrange_weights(1.0)]
        ([1.0, 0.0, 0.0], [0.0, 0.0, 1.0])
    """
    if not 0.0 < t < 1.0:
        raise ConfigError(f"quadratic path: the middle node must lie strictly between 0 and 1, got {t}")
    return ((alpha - t) * (alpha - 1.0) / t, alpha * (alpha - 1.0) / (t * (t - 1.0)), alpha * (alpha - t) / (1.0 - t))


@dataclass(frozen=True)
class PathItem:
    """What one path moves: (tensor name, flat start, flat stop) regions of the state."""

    level: str
    name: str
    regions: tuple[tuple[str, int, int], ...]


def path_items(model: torch.nn.Module, levels: Sequence[str], layers: Sequence[str] = (),
               params_per_layer: int = 0, parameters: Sequence[str] = (), seed: int = 0) -> list[PathItem]:
    """Items of the requested levels: ``model``; each layer (or the named ones); sampled or named scalars.

    Parameters are named ``tensor[i,j,...]`` (e.g. ``fc1.weight[3,7]``) or ``tensor[flat]``.

    Example:
        >>> from landscape.core.models import build_model
        >>> items = path_items(build_model("lenet5"), ["layer", "parameter"], ["conv1"], 0, ["fc3.bias[2]"])
        >>> [(i.level, i.name, i.regions) for i in items]  # doctest: +NORMALIZE_WHITESPACE
        [('layer', 'conv1', (('conv1.weight', 0, 54), ('conv1.bias', 0, 6))),
         ('parameter', 'fc3.bias[2]', (('fc3.bias', 2, 3),))]
    """
    bad = [lv for lv in levels if lv not in LEVELS]
    if bad:
        raise ConfigError(f"path levels: expected any of {list(LEVELS)}, got {bad}")
    state = model_state(model)  # tied weights once, under the name model_state keeps
    alias = tied_aliases(model)
    floats = {n: t for n, t in state.items() if t.is_floating_point()}
    all_layers = layer_names(model)
    unknown = [lay for lay in layers if lay not in all_layers]
    if unknown:
        raise ConfigError(f"path layers {unknown} do not exist; the model's layers are {all_layers}")
    chosen = list(layers) or all_layers
    modules = dict(model.named_modules())

    def layer_tensors(layer: str) -> list[str]:
        mod = modules[layer]
        names = [f"{layer}.{n}" for n, _ in mod.named_parameters(recurse=False)]
        names += [f"{layer}.{n}" for n, b in mod.named_buffers(recurse=False) if b.is_floating_point()]
        return list(dict.fromkeys(alias.get(n, n) for n in names))

    items: list[PathItem] = []
    if "model" in levels:
        items.append(PathItem("model", "model", tuple((n, 0, t.numel()) for n, t in floats.items())))
    if "layer" in levels:
        items += [PathItem("layer", lay, tuple((n, 0, floats[n].numel()) for n in layer_tensors(lay)))
                  for lay in chosen]
    if "parameter" in levels:
        for text in parameters:
            tensor, _, idx = text.partition("[")
            if tensor not in floats or not idx.endswith("]"):
                raise ConfigError(f"parameter {text!r}: expected TENSOR[i,j,...] with a tensor of the model, "
                                  f"e.g. fc1.weight[3,7]")
            try:
                pos = [int(v) for v in idx[:-1].split(",")]
                shape = floats[tensor].shape
                flat = pos[0] if len(pos) == 1 else int(np.ravel_multi_index(pos, tuple(shape)))
                if not 0 <= flat < floats[tensor].numel():
                    raise ValueError
            except ValueError:
                raise ConfigError(f"parameter {text!r}: index out of range for shape "
                                  f"{tuple(floats[tensor].shape)}") from None
            items.append(PathItem("parameter", text, ((tensor, flat, flat + 1),)))
        if params_per_layer:
            g = np.random.default_rng(seed)
            for lay in chosen:
                names = [n for n in layer_tensors(lay) if n in dict(model.named_parameters())]
                sizes = np.array([floats[n].numel() for n in names])
                picks = g.choice(int(sizes.sum()), size=min(params_per_layer, int(sizes.sum())), replace=False)
                offsets = np.concatenate([[0], np.cumsum(sizes)])
                for p in sorted(int(v) for v in picks):
                    k = int(np.searchsorted(offsets, p, side="right") - 1)
                    flat = p - int(offsets[k])
                    idx = ",".join(str(int(v)) for v in np.unravel_index(flat, tuple(floats[names[k]].shape)))
                    items.append(PathItem("parameter", f"{names[k]}[{idx}]", ((names[k], flat, flat + 1),)))
    if not items:
        raise ConfigError("paths: no items to evaluate; set paths.levels (and params_per_layer or parameters)")
    return items


def path_weights(kind: str, alpha: float, t_mid: float = 0.5) -> tuple[float, float, float]:
    """Weights of (θ₀, θ_mid, θ₁) at ``alpha`` on a ``linear`` or ``quadratic`` path, or of (θ₀, θ_b, θ₁) on a
    learned ``bezier`` or ``polychain`` curve (see :mod:`landscape.analysis.curves`).

    Example:
        >>> path_weights("linear", 0.5), path_weights("quadratic", 2.0), path_weights("bezier", 0.5)
        ((0.5, 0.0, 0.5), (3.0, -8.0, 6.0), (0.25, 0.5, 0.25))
    """
    if kind not in KINDS:
        raise ConfigError(f"path kind: expected one of {list(KINDS)}, got {kind!r}")
    if kind in CURVE_KINDS:
        return curve_weights(kind, alpha)
    return linear_weights(alpha) if kind == "linear" else lagrange_weights(alpha, t_mid)
