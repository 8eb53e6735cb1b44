"""Robust vs ambient layers (Němcová 2021, after Zhang et al.): each layer reset to its initial values
(α = 0 of the layer-level linear path) while the rest of the model stays final.

A layer is *robust* when the reset costs at least ``threshold`` accuracy (classification) or raises the loss
by at least ``threshold`` relative to the final loss (regression); else *ambient*.

Example:
    >>> import numpy as np
    >>> rows = layer_report(["model", "conv1", "fc1"], ["model", "layer", "layer"], np.ones(3),
    ...                     np.array([0.0, 1.0]), np.array([[9, 1], [2.0, 1.0], [1.1, 1.0]]),
    ...                     np.array([[0, 1], [0.2, 0.9], [0.88, 0.9]]), threshold=0.1)
    >>> [(r["layer"], r["class"]) for r in rows]
    [('conv1', 'robust'), ('fc1', 'ambient')]
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..core.errors import ConfigError

__all__ = ["layer_report"]


def layer_report(names: Sequence[str], levels: Sequence[str], distance: np.ndarray, alpha: np.ndarray,
                 loss: np.ndarray, accuracy: np.ndarray, threshold: float) -> list[dict[str, Any]]:
    """One row per layer-level item of a linear path (``loss``/``accuracy`` [items, alpha]): final and reset
    values, the damage, the distance travelled and the class; sorted from the most to the least damaging."""
    i0, i1 = np.flatnonzero(np.isclose(alpha, 0.0)), np.flatnonzero(np.isclose(alpha, 1.0))
    if not len(i0) or not len(i1):
        raise ConfigError("the robust/ambient report needs alpha = 0 and 1 on the path grid (e.g. paths.alpha = "
                          "\"-0.5:1.5:41\")")
    rows = []
    classify = np.isfinite(accuracy).any()
    for k, (name, level) in enumerate(zip(names, levels)):
        if level != "layer":
            continue
        l0, l1, a0, acc1 = loss[k, i0[0]], loss[k, i1[0]], accuracy[k, i0[0]], accuracy[k, i1[0]]
        damage = (acc1 - a0) if classify else (l0 - l1) / max(abs(l1), 1e-12)
        rows.append({"layer": name, "loss_final": l1, "loss_reset": l0, "accuracy_final": acc1,
                     "accuracy_reset": a0, "damage": damage, "distance": float(distance[k]),
                     "class": "robust" if damage >= threshold else "ambient"})
    rows.sort(key=lambda r: -r["damage"])
    return rows
