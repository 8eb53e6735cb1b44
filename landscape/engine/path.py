"""The path evaluator: (item, α) points of 1-D paths between checkpoints, evaluated in place.

The model holds θ₁ except the current item's regions, which hold the path's weighted sum of θ₀, θ_mid
and θ₁ (see :mod:`landscape.analysis.interpolation`).

Example:
    >>> from landscape.core.data import load_data
    >>> from landscape.core.models import build_model
    >>> from landscape.analysis.interpolation import path_items
    >>> from landscape.engine.evaluator import Evaluator
    >>> _, te = load_data("spiral", n_per_class=20)
    >>> model = build_model("mlp", te.info(), depth=1, width=4)
    >>> s = {k: v.clone() for k, v in model.state_dict().items()}
    >>> pe = PathEvaluator(Evaluator(model, te, "cpu"), [s, s, s], path_items(model, ["model"]))
    >>> loss, acc = pe.evaluate_points(np.array([0.0]), np.array([0.5]))
    >>> loss.shape
    (1,)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

import time

from ..analysis.interpolation import KINDS, PathItem, lagrange_weights, path_weights
from ..core.errors import ConfigError
from .curve import batchnorm_layers, update_bn
from .evaluator import Evaluator

__all__ = ["PathEvaluator"]


class PathEvaluator:
    """Evaluates (item, α) points in place: the model holds θ₁ except the current item's regions."""

    auto = False
    points_per_batch = 1

    def __init__(self, evaluator: Evaluator, states: Sequence[dict[str, torch.Tensor]], items: Sequence[PathItem],
                 kind: str = "linear", t_mid: float = 0.5, bn_batches: Sequence[torch.Tensor] | None = None):
        """``bn_batches``: re-estimate the BatchNorm statistics on these input batches at every point
        (``paths.curve.update_bn``); their cost is counted in ``bn_seconds``."""
        if kind not in KINDS:
            raise ConfigError(f"path kind: expected one of {list(KINDS)}, got {kind!r}")
        self.ev, self.items, self.kind, self.t_mid = evaluator, list(items), kind, t_mid
        if kind == "quadratic":
            lagrange_weights(0.0, t_mid)  # validates t
        dev = evaluator.device
        s0, sm, s1 = (dict((k, v.to(dev, torch.float32)) for k, v in s.items()) for s in states)
        evaluator.set_state({k: v for k, v in s1.items()}, strict=False)
        self._views = []
        for item in self.items:
            views = []
            for name, a, b in item.regions:
                target = evaluator.state[name].view(-1)[a:b]
                views.append((target, s0[name].reshape(-1)[a:b].to(target.dtype),
                              sm[name].reshape(-1)[a:b].to(target.dtype), s1[name].reshape(-1)[a:b].to(target.dtype)))
            self._views.append(views)
        self.distance = np.array([float(torch.sqrt(sum(((v1.double() - v0.double()) ** 2).sum()
                                                        for _, v0, _, v1 in views))) for views in self._views])
        self._current: int | None = None
        self.bn_seconds, self.bn_points = 0.0, 0
        self._bn_batches = [x.to(dev) for x in bn_batches] if bn_batches is not None else None
        # the BatchNorm statistics at θ₁, restored before each point is written and re-estimated
        self._bn_saved = [(b, b.detach().clone()) for m in batchnorm_layers(evaluator.model)
                          for b in m.buffers(recurse=False)] if bn_batches is not None else []

    def weights(self, alpha: float) -> tuple[float, float, float]:
        """Weights of (θ₀, θ_mid, θ₁) at ``alpha`` on this path."""
        return path_weights(self.kind, alpha, self.t_mid)

    @torch.no_grad()
    def set_point(self, item: int, alpha: float) -> None:
        """Write item ``item`` at ``alpha`` (restoring the previous item to θ₁ first)."""
        if self._current is not None and self._current != item:
            for target, _, _, v1 in self._views[self._current]:
                target.copy_(v1)
        self._current = item
        for target, saved in self._bn_saved:
            target.copy_(saved)
        w0, wm, w1 = self.weights(float(alpha))
        for target, v0, vm, v1 in self._views[item]:
            torch.mul(v0, w0, out=target)
            if wm:
                target.add_(vm, alpha=wm)
            target.add_(v1, alpha=w1)
        if self._bn_saved:
            t0 = time.perf_counter()
            update_bn(self.ev.model, self._bn_batches)
            self.ev.model.eval()
            self.bn_seconds += time.perf_counter() - t0
            self.bn_points += 1

    def evaluate_points(self, items: np.ndarray, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Loss and accuracy of item ``items[k]`` at ``alphas[k]`` (items as floats, as the store keeps them)."""
        loss, acc = np.empty(len(items)), np.empty(len(items))
        for k, (i, a) in enumerate(zip(items, alphas)):
            self.set_point(int(round(float(i))), float(a))
            r = self.ev.evaluate()
            loss[k], acc[k] = r.loss, r.accuracy
        return loss, acc
